//! Which rules a job has, in what order, and which one fires.
//!
//! Order: the job's own `[[jobs.X.fixup]]` rules, then the rules of each pack
//! in `fixups`, in the order listed. A line is *claimed* by the first rule
//! whose `when` matches it and whose `stream` admits it; no later rule sees
//! that line. Only the claiming rule can fire for it:
//! - a rule without `exit` fires at once;
//! - a rule with `exit` (podman's 125, ssh's 255) fires when the job ends
//!   with one of those codes. Until then the [`Matcher`] holds the line;
//!   if the job ends otherwise (another code, a signal, still running when
//!   stopped), that line fires nothing.
//!
//! At most one remedy per run of a job: once one is due, the job is being
//! stopped, and later lines and the exit that stopping causes are ignored.

use crate::config::{FixupRule, Job, Plan, StreamFilter};
use crate::model::{ExitInfo, Stream};

use super::remedy::Remedy;

/// The rules of `job` in the order they are tried. A pack the plan does not
/// hold (the config layer rejects that) adds nothing.
pub fn rules_for<'p>(plan: &'p Plan, job: &'p Job) -> Vec<&'p FixupRule> {
    let packs = job
        .fixup_packs
        .iter()
        .filter_map(|name| plan.fixup_packs.get(name))
        .flat_map(|pack| &pack.rules);
    job.fixup_rules.iter().chain(packs).collect()
}

/// The first rule that claims `line` (see the module docs), with its index.
/// `stream` is `None` when the job's streams are merged (a pty): then every
/// rule's `stream` admits the line, as zap cannot tell.
fn claim<'r>(
    rules: impl IntoIterator<Item = &'r FixupRule>,
    line: &str,
    stream: Option<Stream>,
) -> Option<(usize, &'r FixupRule)> {
    rules
        .into_iter()
        .enumerate()
        .find(|(_, rule)| admits(rule.stream, stream) && rule.when.is_match(line))
}

/// The rule that claims `line`, whether or not its `exit` filter would let
/// it fire: for explaining a pack test case that fails.
pub(super) fn claimant<'r>(
    rules: &[&'r FixupRule],
    line: &str,
    stream: Stream,
) -> Option<&'r FixupRule> {
    claim(rules.iter().copied(), line, Some(stream)).map(|(_, rule)| rule)
}

fn admits(filter: StreamFilter, stream: Option<Stream>) -> bool {
    match (filter, stream) {
        (StreamFilter::Any, _) | (_, None) => true,
        (StreamFilter::Stdout, Some(stream)) => stream == Stream::Stdout,
        (StreamFilter::Stderr, Some(stream)) => stream == Stream::Stderr,
    }
}

/// Whether a rule's `exit` filter holds for the job's exit code (`None`: not
/// known, e.g. still running).
fn exit_holds(rule: &FixupRule, exit: Option<i32>) -> bool {
    rule.exit.is_empty() || exit.is_some_and(|code| rule.exit.contains(&code))
}

/// The remedy for one line, judged at once: the rule that claims the line
/// fires if its `exit` filter holds for `exit`. This is how a pack's test
/// case is judged; a running job goes through [`Matcher`].
pub fn first_match(
    rules: &[&FixupRule],
    line: &str,
    stream: Stream,
    exit: Option<i32>,
) -> Option<Remedy> {
    let (_, rule) = claim(rules.iter().copied(), line, Some(stream))?;
    exit_holds(rule, exit).then(|| Remedy::new(rule, line, stream))
}

/// Watches one job instance's output and exit and says when a remedy is
/// due. Feed it every line with [`Matcher::line`] and the end of the run
/// with [`Matcher::exit`]; call [`Matcher::reset`] before the next run.
///
/// It owns copies of the rules (a `Regex` clone shares the compiled
/// program), so the supervisor can keep it without borrowing the plan. It
/// holds at most one line per rule with an `exit` filter: memory stays
/// bounded whatever the job prints.
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<FixupRule>,
    merged: bool,
    /// Remedies of claimed lines waiting for the exit code, oldest first;
    /// at most one per rule (its first line).
    held: Vec<(usize, Remedy)>,
    spent: bool,
}

impl Matcher {
    /// `merged_streams`: the job runs in a pty, where stderr arrives as
    /// stdout, so `stream` filters cannot be applied.
    pub fn new(rules: Vec<FixupRule>, merged_streams: bool) -> Matcher {
        Matcher {
            rules,
            merged: merged_streams,
            held: Vec::new(),
            spent: false,
        }
    }

    /// The matcher for `job`'s rules (see [`rules_for`]).
    pub fn for_job(plan: &Plan, job: &Job) -> Matcher {
        let rules = rules_for(plan, job).into_iter().cloned().collect();
        Matcher::new(rules, job.pty)
    }

    /// The job has no rules: feeding it lines is pointless.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A line of output: the remedy to run now, if its rule has no `exit`
    /// filter. A line claimed by a rule with one is held for [`Matcher::exit`].
    pub fn line(&mut self, line: &str, stream: Stream) -> Option<Remedy> {
        if self.spent {
            return None;
        }
        let stream = (!self.merged).then_some(stream);
        let (index, rule) = claim(&self.rules, line, stream)?;
        let stream = stream.unwrap_or(Stream::Stdout);
        if rule.exit.is_empty() {
            self.spent = true;
            return Some(Remedy::new(rule, line, stream));
        }
        if !self.held.iter().any(|(held, _)| *held == index) {
            self.held.push((index, Remedy::new(rule, line, stream)));
        }
        None
    }

    /// The run ended: the remedy of the oldest held line whose rule's `exit`
    /// codes hold the exit code. A signal or an unknown end matches none.
    pub fn exit(&mut self, exit: &ExitInfo) -> Option<Remedy> {
        if self.spent {
            return None;
        }
        let ExitInfo::Code(code) = exit else {
            return None;
        };
        let position = self
            .held
            .iter()
            .position(|(index, _)| self.rules[*index].exit.contains(code))?;
        self.spent = true;
        Some(self.held.swap_remove(position).1)
    }

    /// Forget the run that ended: held lines and whether a remedy was due.
    pub fn reset(&mut self) {
        self.held.clear();
        self.spent = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixup::testing::rule;

    fn with_stream(mut rule: FixupRule, stream: StreamFilter) -> FixupRule {
        rule.stream = stream;
        rule
    }

    fn with_exit(mut rule: FixupRule, exit: &[i32]) -> FixupRule {
        rule.exit = exit.to_vec();
        rule
    }

    #[test]
    fn the_first_matching_rule_fires_and_only_it() {
        let rules = [
            rule("job/1", "in use", "first"),
            rule("pack/a", "already in use", "second"),
            rule("pack/b", "nothing", "third"),
        ];
        let refs: Vec<&FixupRule> = rules.iter().collect();
        let remedy = first_match(&refs, "name already in use", Stream::Stderr, None);
        assert_eq!(
            remedy.map(|r| (r.rule, r.command)),
            Some(("job/1".into(), "first".into()))
        );
        let remedy = first_match(&refs[1..], "name already in use", Stream::Stderr, None);
        assert_eq!(remedy.map(|r| r.rule), Some("pack/a".into()));
        assert!(first_match(&refs, "all fine", Stream::Stderr, None).is_none());
    }

    #[test]
    fn stream_filters_skip_a_rule_without_claiming_the_line() {
        let rules = [
            with_stream(rule("job/1", "boom", "on-stderr"), StreamFilter::Stderr),
            with_stream(rule("job/2", "boom", "on-stdout"), StreamFilter::Stdout),
        ];
        let refs: Vec<&FixupRule> = rules.iter().collect();
        let fired = |stream| first_match(&refs, "boom", stream, None).map(|r| r.command);
        assert_eq!(fired(Stream::Stderr).as_deref(), Some("on-stderr"));
        assert_eq!(fired(Stream::Stdout).as_deref(), Some("on-stdout"));
    }

    #[test]
    fn an_exit_filter_needs_the_exit_code() {
        let rules = [with_exit(rule("podman/x", "in use", "rm"), &[125])];
        let refs: Vec<&FixupRule> = rules.iter().collect();
        let fires = |exit| first_match(&refs, "in use", Stream::Stderr, exit).is_some();
        assert!(fires(Some(125)));
        assert!(!fires(Some(1)));
        assert!(!fires(None));
    }

    #[test]
    fn a_claimed_line_is_not_passed_on_when_its_exit_filter_fails() {
        let rules = [
            with_exit(rule("job/1", "in use", "exit-filtered"), &[125]),
            rule("pack/a", "in use", "immediate"),
        ];
        let refs: Vec<&FixupRule> = rules.iter().collect();
        assert!(first_match(&refs, "in use", Stream::Stderr, Some(1)).is_none());
        let mut matcher = Matcher::new(rules.to_vec(), false);
        assert!(matcher.line("in use", Stream::Stderr).is_none());
        assert!(matcher.exit(&ExitInfo::Code(1)).is_none());
    }

    #[test]
    fn rules_come_from_the_job_then_its_packs_in_order() {
        let files = [
            (
                "jobs/web.toml",
                "[jobs.api]\nhost = \"local\"\nsteps = [\"serve\"]\nfixups = [\"mine\", \"port\"]\n\n[[jobs.api.fixup]]\nwhen = \"own\"\nrun = \"true\"\n",
            ),
            (
                "jobs/fixups/mine.toml",
                "name = \"mine\"\ndescription = \"d\"\n[[rule]]\nname = \"a\"\nwhen = \"a\"\nrun = \"true\"\n[[rule]]\nname = \"b\"\nwhen = \"b\"\nrun = \"true\"\n",
            ),
        ];
        let sources: Vec<crate::config::SourceFile> = files
            .iter()
            .map(|(path, text)| crate::config::SourceFile::new(*path, *text))
            .collect();
        let plan = match crate::config::load_sources(std::path::Path::new("/srv"), &sources) {
            Ok(plan) => plan,
            Err(errors) => panic!("{errors}"),
        };
        let job = &plan.jobs[0];
        let names: Vec<&str> = rules_for(&plan, job)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "job/1",
                "mine/a",
                "mine/b",
                "port/bind",
                "port/node",
                "port/werkzeug",
                "port/no-port"
            ]
        );
        let matcher = Matcher::for_job(&plan, job);
        assert!(!matcher.is_empty());
    }

    #[test]
    fn matcher_fires_once_per_run() {
        let mut matcher = Matcher::new(vec![rule("job/1", "boom (?P<n>\\d)", "fix {n}")], false);
        assert!(matcher.line("fine", Stream::Stdout).is_none());
        let remedy = matcher.line("boom 1", Stream::Stdout);
        assert_eq!(remedy.map(|r| r.command).as_deref(), Some("fix 1"));
        assert!(matcher.line("boom 2", Stream::Stdout).is_none());
        assert!(matcher.exit(&ExitInfo::Code(1)).is_none());
        matcher.reset();
        let remedy = matcher.line("boom 3", Stream::Stdout);
        assert_eq!(remedy.map(|r| r.command).as_deref(), Some("fix 3"));
    }

    #[test]
    fn matcher_holds_exit_filtered_lines_until_the_exit() {
        let rules = vec![
            with_exit(
                rule("podman/name", "name (?P<n>\\w+) in use", "rm {n}"),
                &[125],
            ),
            with_exit(
                rule("podman/pod", "pod (?P<n>\\w+) in use", "pod rm {n}"),
                &[125, 2],
            ),
        ];
        let mut matcher = Matcher::new(rules, false);
        assert!(matcher.line("name web1 in use", Stream::Stderr).is_none());
        assert!(matcher.line("name web2 in use", Stream::Stderr).is_none());
        assert!(matcher.line("pod p1 in use", Stream::Stderr).is_none());
        let fired = matcher.exit(&ExitInfo::Code(125)).map(|r| r.command);
        assert_eq!(
            fired.as_deref(),
            Some("rm web1"),
            "the oldest held line, not a later one"
        );
        assert!(matcher.exit(&ExitInfo::Code(125)).is_none(), "spent");

        matcher.reset();
        assert!(matcher.line("name web1 in use", Stream::Stderr).is_none());
        assert!(matcher.line("pod p1 in use", Stream::Stderr).is_none());
        let fired = matcher.exit(&ExitInfo::Code(2)).map(|r| r.command);
        assert_eq!(
            fired.as_deref(),
            Some("pod rm p1"),
            "the oldest line whose rule takes 2"
        );

        matcher.reset();
        assert!(
            matcher.exit(&ExitInfo::Code(125)).is_none(),
            "reset forgets held lines"
        );
        assert!(matcher.line("name web1 in use", Stream::Stderr).is_none());
        assert!(matcher.exit(&ExitInfo::Signal("TERM".into())).is_none());
        assert!(matcher.exit(&ExitInfo::Unknown).is_none());
    }

    #[test]
    fn an_immediate_rule_fires_while_another_line_is_held() {
        let rules = vec![
            with_exit(rule("a/held", "^Address already in use$", "held"), &[1]),
            rule("a/now", "Port (?P<port>\\d+) is in use", "free {port}"),
        ];
        let mut matcher = Matcher::new(rules, false);
        assert!(
            matcher
                .line("Address already in use", Stream::Stderr)
                .is_none()
        );
        let fired = matcher.line("Port 5000 is in use by another program", Stream::Stderr);
        assert_eq!(fired.map(|r| r.command).as_deref(), Some("free 5000"));
        assert!(
            matcher.exit(&ExitInfo::Code(1)).is_none(),
            "one remedy per run"
        );
    }

    #[test]
    fn a_pty_job_ignores_stream_filters() {
        let rules = vec![with_stream(
            rule("job/1", "boom", "fix"),
            StreamFilter::Stderr,
        )];
        let mut separate = Matcher::new(rules.clone(), false);
        assert!(separate.line("boom", Stream::Stdout).is_none());
        let mut merged = Matcher::new(rules, true);
        assert!(merged.line("boom", Stream::Stdout).is_some());
    }
}

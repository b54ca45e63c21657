//! What an earlier zap left running (it was killed before it could stop
//! its jobs), recorded in `.zap/state`: stopped host by host before that
//! host's jobs start, all of a host's at once, while the loop goes on
//! answering. A host that does not answer keeps its leftovers pending; its
//! jobs wait as unreachable, and both are dealt with when it answers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ledger::Leftover;
use super::leftovers::stop_leftover_command;
use crate::model::{HostName, InstanceId};
use crate::transport::host::Transport;

/// How long stopping one host's leftovers may take before they wait for
/// the host to answer again.
pub const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// How one leftover ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverEnd {
    /// Its process group (still of that run) was stopped, and `marked`
    /// processes it had left outside the group.
    Stopped { marked: u32 },
    /// Its group was gone; `marked` processes it left were stopped.
    Gone { marked: u32 },
    /// Its group now belongs to something else: left alone.
    NotOurs,
    /// Its host is no longer in hosts.toml: zap cannot reach it.
    HostRemoved,
    /// The host did not answer: it stays pending.
    NotYet(String),
}

/// One leftover and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    pub leftover: Leftover,
    pub end: LeftoverEnd,
}

impl Cleared {
    /// Done with, one way or another: the ledger may forget it.
    pub fn is_settled(&self) -> bool {
        !matches!(self.end, LeftoverEnd::NotYet(_))
    }
}

/// Stops every one of `leftovers` on `transport`'s host, all at once.
pub async fn clear_on_host(transport: Transport, leftovers: Vec<Leftover>) -> Vec<Cleared> {
    let stops = leftovers.into_iter().map(|leftover| {
        let transport = transport.clone();
        async move {
            let end = stop_one(&transport, &leftover).await;
            Cleared { leftover, end }
        }
    });
    futures::future::join_all(stops).await
}

async fn stop_one(transport: &Transport, leftover: &Leftover) -> LeftoverEnd {
    let command = stop_leftover_command(leftover.pgid, &leftover.run, leftover.marker.as_deref());
    match tokio::time::timeout(LEFTOVER_TIMEOUT, transport.run_capture(&command)).await {
        Ok(Ok((_, out, _))) => {
            let out = String::from_utf8_lossy(&out);
            let mut words = out.split_whitespace();
            let group = words.next().unwrap_or("");
            let marked = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            match group {
                "killed" => LeftoverEnd::Stopped { marked },
                "gone" => LeftoverEnd::Gone { marked },
                _ => LeftoverEnd::NotOurs,
            }
        }
        Ok(Err(error)) => LeftoverEnd::NotYet(error.to_string()),
        Err(_) => LeftoverEnd::NotYet(format!("no answer within {}s", LEFTOVER_TIMEOUT.as_secs())),
    }
}

/// The leftovers still to stop per host, and the job starts that wait for
/// them.
#[derive(Debug, Default)]
pub struct Pending {
    leftovers: BTreeMap<HostName, Vec<Leftover>>,
    /// Hosts whose clean-up runs now: their jobs' starts wait in `held`.
    clearing: BTreeMap<HostName, Vec<(InstanceId, u64)>>,
}

impl Pending {
    /// Sorts `leftovers` by host: those of hosts zap can reach stay
    /// pending; the others are settled at once (returned).
    pub fn new(
        leftovers: Vec<Leftover>,
        reachable: impl Fn(&HostName) -> bool,
    ) -> (Pending, Vec<Cleared>) {
        let mut pending = Pending::default();
        let mut settled = Vec::new();
        for leftover in leftovers {
            if reachable(&leftover.host) {
                pending
                    .leftovers
                    .entry(leftover.host.clone())
                    .or_default()
                    .push(leftover);
            } else {
                settled.push(Cleared {
                    leftover,
                    end: LeftoverEnd::HostRemoved,
                });
            }
        }
        (pending, settled)
    }

    /// Takes `host`'s pending leftovers to be stopped now; until
    /// [`Pending::cleared`] is called for it, starts of its jobs wait.
    pub fn begin_clearing(&mut self, host: &HostName) -> Option<Vec<Leftover>> {
        let leftovers = self.leftovers.remove(host)?;
        self.clearing.entry(host.clone()).or_default();
        Some(leftovers)
    }

    /// Hosts with leftovers not yet being stopped.
    pub fn hosts(&self) -> Vec<HostName> {
        self.leftovers.keys().cloned().collect()
    }

    /// Whether a start on `host` must wait; if so it is kept.
    pub fn hold(&mut self, id: &InstanceId, generation: u64) -> bool {
        match self.clearing.get_mut(&id.host) {
            Some(held) => {
                held.push((id.clone(), generation));
                true
            }
            None => false,
        }
    }

    /// `host`'s clean-up ended with `results`: what did not reach its host
    /// stays pending. Returns the starts that waited, and whether the host
    /// is clear (all its leftovers settled).
    pub fn cleared(
        &mut self,
        host: &HostName,
        results: &[Cleared],
    ) -> (Vec<(InstanceId, u64)>, bool) {
        let held = self.clearing.remove(host).unwrap_or_default();
        let unsettled: Vec<Leftover> = results
            .iter()
            .filter(|cleared| !cleared.is_settled())
            .map(|cleared| cleared.leftover.clone())
            .collect();
        let clear = unsettled.is_empty();
        if !clear {
            self.leftovers
                .entry(host.clone())
                .or_default()
                .extend(unsettled);
        }
        (held, clear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobName;

    fn leftover(host: &str, pgid: u32) -> Leftover {
        Leftover {
            run: "old".into(),
            instance: format!("web.a@{host}"),
            host: HostName(host.into()),
            pid: pgid,
            pgid,
            marker: None,
        }
    }

    fn id(host: &str) -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: "a".into(),
            },
            host: HostName(host.into()),
        }
    }

    #[test]
    fn starts_on_a_host_wait_for_its_clean_up_and_an_unanswered_one_stays_pending() {
        let n3 = HostName("n3".into());
        let (mut pending, settled) = Pending::new(
            vec![leftover("n3", 10), leftover("n3", 11), leftover("gone", 12)],
            |host| host.0 != "gone",
        );
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].end, LeftoverEnd::HostRemoved);
        assert_eq!(pending.hosts(), std::slice::from_ref(&n3));
        let taken = pending.begin_clearing(&n3).expect("n3's leftovers");
        assert_eq!(taken.len(), 2);
        assert!(pending.hold(&id("n3"), 1), "n3's job waits");
        assert!(!pending.hold(&id("n1"), 1), "n1's does not");
        // The host did not answer: nothing settled, both stay pending, and
        // the start that waited is handed back to be told so.
        let results: Vec<Cleared> = taken
            .into_iter()
            .map(|leftover| Cleared {
                leftover,
                end: LeftoverEnd::NotYet("no answer".into()),
            })
            .collect();
        let (held, clear) = pending.cleared(&n3, &results);
        assert_eq!((held, clear), (vec![(id("n3"), 1)], false));
        assert_eq!(pending.hosts(), std::slice::from_ref(&n3));
        assert!(!pending.hold(&id("n3"), 2), "no clean-up runs for n3 now");
        // It answers later: settled, nothing pending.
        let again = pending.begin_clearing(&n3).expect("still pending");
        let results: Vec<Cleared> = again
            .into_iter()
            .map(|leftover| Cleared {
                leftover,
                end: LeftoverEnd::Stopped { marked: 0 },
            })
            .collect();
        let (held, clear) = pending.cleared(&n3, &results);
        assert!(held.is_empty() && clear);
        assert!(pending.hosts().is_empty());
    }
}

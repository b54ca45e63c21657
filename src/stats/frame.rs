//! Cuts the poller's output into snapshots. Each one sits between
//! `@@zapstats:NONCE:begin SEQ PID` and `@@zapstats:NONCE:end SEQ`, NONCE
//! being fresh for every start of the poller, so output of anything else on
//! the channel (a login banner, a shell's noise) is never taken for figures.

/// Bytes of one line beyond which it is dropped as garbage: the longest real
/// line is a process line (well under 1 KB).
const LINE_MAX: usize = 64 * 1024;

/// Bytes of one snapshot beyond which it is dropped: 100,000 processes
/// print about 6 MB.
const BODY_MAX: usize = 32 * 1024 * 1024;

pub struct Framer {
    begin: String,
    end: String,
    /// The start of a line whose newline has not come yet.
    partial: Vec<u8>,
    /// The snapshot being read, from its begin line on.
    body: Option<String>,
    pid: Option<u32>,
    /// Snapshots cut short (a begin without its end) or too large.
    pub dropped: u32,
}

impl Framer {
    pub fn new(nonce: &str) -> Framer {
        Framer {
            begin: format!("@@zapstats:{nonce}:begin "),
            end: format!("@@zapstats:{nonce}:end "),
            partial: Vec::new(),
            body: None,
            pid: None,
            dropped: 0,
        }
    }

    /// The poller's pid (which leads its process group), once a begin line
    /// told it: how to stop it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Takes more output; returns the snapshots it completed, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        let mut rest = data;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(newline);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(head, &mut done);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.line(&line, &mut done);
            }
        }
        if self.partial.len() + rest.len() > LINE_MAX {
            self.partial.clear();
            self.abandon();
        } else {
            self.partial.extend_from_slice(rest);
        }
        done
    }

    fn line(&mut self, bytes: &[u8], done: &mut Vec<String>) {
        if bytes.len() > LINE_MAX {
            self.abandon();
            return;
        }
        let line = String::from_utf8_lossy(bytes);
        if let Some(header) = line.strip_prefix(&self.begin) {
            if self.body.is_some() {
                self.dropped += 1;
            }
            if let Some(pid) = header.split(' ').nth(1).and_then(|pid| pid.parse().ok()) {
                self.pid = Some(pid);
            }
            self.body = Some(String::new());
        } else if line.starts_with(&self.end) {
            if let Some(body) = self.body.take() {
                done.push(body);
            }
        } else if let Some(body) = self.body.as_mut() {
            if body.len() + line.len() >= BODY_MAX {
                self.abandon();
                return;
            }
            body.push_str(&line);
            body.push('\n');
        }
    }

    fn abandon(&mut self) {
        if self.body.take().is_some() {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn snapshots_come_out_whole_however_the_output_is_cut() {
        let text = format!(
            "banner\n@@zapstats:{NONCE}:begin 1 4242\nh proc 100 4096\np 1 S 0 1 1 0 0 5 10 init\n\
             @@zapstats:{NONCE}:end 1\n@@zapstats:{NONCE}:begin 2 4242\nh proc 100 4096\n\
             @@zapstats:{NONCE}:end 2\n"
        );
        for cut in 1..text.len() {
            let mut framer = Framer::new(NONCE);
            let mut bodies = framer.push(&text.as_bytes()[..cut]);
            bodies.extend(framer.push(&text.as_bytes()[cut..]));
            assert_eq!(
                bodies,
                vec![
                    "h proc 100 4096\np 1 S 0 1 1 0 0 5 10 init\n".to_string(),
                    "h proc 100 4096\n".to_string()
                ],
                "cut at {cut}"
            );
            assert_eq!(framer.pid(), Some(4242));
        }
    }

    #[test]
    fn frames_of_another_nonce_are_ordinary_output() {
        let mut framer = Framer::new(NONCE);
        let fake = "@@zapstats:ffffffffffffffffffffffffffffffff:begin 1 1\nh proc 100 4096\n\
                    @@zapstats:ffffffffffffffffffffffffffffffff:end 1\n";
        assert!(framer.push(fake.as_bytes()).is_empty());
        assert_eq!(framer.pid(), None);
    }

    #[test]
    fn a_snapshot_cut_short_is_dropped_and_the_next_one_read() {
        let mut framer = Framer::new(NONCE);
        let text = format!(
            "@@zapstats:{NONCE}:begin 1 7\nh proc 100 4096\n\
             @@zapstats:{NONCE}:begin 2 7\nh ps\n@@zapstats:{NONCE}:end 2\n"
        );
        assert_eq!(framer.push(text.as_bytes()), vec!["h ps\n".to_string()]);
        assert_eq!(framer.dropped, 1);
    }

    #[test]
    fn an_endless_line_is_dropped_without_growing() {
        let mut framer = Framer::new(NONCE);
        framer.push(format!("@@zapstats:{NONCE}:begin 1 7\n").as_bytes());
        for _ in 0..100 {
            framer.push(&[b'x'; 4096]);
        }
        assert!(framer.partial.len() <= LINE_MAX);
        assert_eq!(framer.dropped, 1);
        let tail = format!("\n@@zapstats:{NONCE}:begin 2 7\nh ps\n@@zapstats:{NONCE}:end 2\n");
        assert_eq!(framer.push(tail.as_bytes()), vec!["h ps\n".to_string()]);
    }
}

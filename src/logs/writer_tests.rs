//! Tests of the log writer thread: what it writes, rotation, back-pressure
//! and errors.

use std::sync::mpsc;
use std::time::SystemTime;

use super::*;
use crate::logs::files::tests::instance;
use crate::logs::record::tests::TRICKY;
use crate::logs::{Origin, log_path, read_log, time};
use crate::model::StepIndex;

fn out(step: u32, text: impl Into<String>) -> LogLine {
    LogLine {
        seq: 0,
        at: SystemTime::now(),
        origin: Origin::Stdout,
        step: Some(StepIndex(step)),
        text: text.into(),
        split: false,
    }
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

fn read(root: &Path, id: &InstanceId) -> Vec<LogLine> {
    read_log(root, id, None).expect("read_log")
}

#[test]
fn tricky_lines_come_back_exactly_through_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("web", "build", "n1");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    let mut sent = Vec::new();
    for (n, text) in TRICKY.iter().enumerate() {
        let line = LogLine {
            seq: n as u64,
            at: time::truncate(SystemTime::now()),
            origin: [Origin::Stdout, Origin::Stderr, Origin::Zap][n % 3],
            step: (n % 4 != 0).then_some(StepIndex(n as u32)),
            text: (*text).to_owned(),
            split: n % 5 == 1,
        };
        writer.append(&id, line.clone());
        sent.push(line);
    }
    assert!(writer.flush_and_stop().is_empty());
    assert_eq!(read(dir.path(), &id), sent);
    let file = fs::read_to_string(log_path(dir.path(), &id)).expect("file");
    assert_eq!(
        file.matches('\n').count(),
        TRICKY.len(),
        "one line per line"
    );
}

#[test]
fn rotates_at_the_size_limit_keeping_exactly_keep_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let rotation = Rotation {
        max_bytes: 1000,
        keep: 3,
    };
    let writer = LogWriter::start_with(dir.path().to_path_buf(), rotation, |_| {}).expect("start");
    for n in 0..200 {
        writer.append(&id, out(1, format!("line {n:04} {}", "x".repeat(10))));
    }
    assert!(writer.flush_and_stop().is_empty());

    let path = log_path(dir.path(), &id);
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["s.j@h.log", "s.j@h.log.1", "s.j@h.log.2"]);
    for name in &names {
        let size = fs::metadata(dir.path().join(name)).expect("size").len();
        assert!(size <= rotation.max_bytes, "{name}: {size}");
        // Rotated files were filled as far as whole lines go.
        if name.ends_with(".log.1") || name.ends_with(".log.2") {
            assert!(size > rotation.max_bytes - 60, "{name}: {size}");
        }
    }

    // The newest lines, in order, up to the last; the oldest are gone.
    let lines = read(dir.path(), &id);
    let numbers: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.text.get(5..9)?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), lines.len());
    assert_eq!(numbers.last(), Some(&199));
    assert!(numbers.first() > Some(&0));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    let oldest = fs::read_to_string(super::files::rotated(&path, 2)).expect("oldest");
    assert!(oldest.contains(&format!("line {:04} ", numbers[0])));
}

#[test]
fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let rotation = Rotation {
        max_bytes: 100,
        keep: 2,
    };
    let writer = LogWriter::start_with(dir.path().to_path_buf(), rotation, |_| {}).expect("start");
    writer.append(&id, out(1, "short"));
    writer.append(&id, out(1, "y".repeat(500)));
    writer.append(&id, out(1, "after"));
    assert!(writer.flush_and_stop().is_empty());
    let lines = read(dir.path(), &id);
    assert_eq!(texts(&lines), ["y".repeat(500), "after".to_owned()]);
}

#[test]
fn lines_of_many_instances_arrive_in_order_and_every_one_is_written_or_counted() {
    const INSTANCES: usize = 10;
    const LINES: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let rotation = Rotation {
        max_bytes: 256 * 1024,
        keep: 100,
    };
    let writer = LogWriter::start_with(dir.path().to_path_buf(), rotation, |_| {}).expect("start");
    let ids: Vec<_> = (0..INSTANCES)
        .map(|n| instance("sys", "job", &format!("n{n}")))
        .collect();
    thread::scope(|scope| {
        for id in &ids {
            let writer = writer.clone();
            scope.spawn(move || {
                for first in (0..LINES).step_by(BATCH_LINES) {
                    let batch = (first..(first + BATCH_LINES).min(LINES))
                        .map(|n| out(1 + (n % 3) as u32, format!("{id} {n}")))
                        .collect();
                    writer.append_all(id, batch);
                }
            });
        }
    });
    assert!(writer.flush_and_stop().is_empty());
    for id in &ids {
        let lines = read(dir.path(), id);
        // A disk slower than ten writers may miss lines: the file says how
        // many, where they were.
        let mut expected = 0;
        for line in &lines {
            if line.origin == Origin::Zap {
                let missed: usize = line
                    .text
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a count");
                expected += missed;
                continue;
            }
            assert_eq!(line.text, format!("{id} {expected}"), "{id} in order");
            expected += 1;
        }
        assert_eq!(expected, LINES, "{id}: every line written or counted");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn append_returns_while_the_writer_is_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    writer.stall(Duration::from_millis(800));
    let began = Instant::now();
    let task = {
        let writer = writer.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for n in 0..QUEUE_BATCHES / 2 {
                writer.append(&id, out(1, n.to_string()));
            }
        })
    };
    task.await.expect("task");
    let took = began.elapsed();
    assert!(took < Duration::from_millis(400), "append waited {took:?}");
    // The lines were queued, not written: the thread is still asleep.
    assert!(!log_path(dir.path(), &id).exists());
    assert!(writer.flush_and_stop().is_empty());
    assert_eq!(read(dir.path(), &id).len(), QUEUE_BATCHES / 2);
}

#[test]
fn a_full_queue_never_blocks_the_sender_and_the_missed_lines_are_counted_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    // A disk that takes nothing for a long while: the sender must not care.
    writer.stall(Duration::from_secs(3));
    let sent = QUEUE_BATCHES * BATCH_LINES * 2;
    let began = Instant::now();
    for n in 0..sent / BATCH_LINES {
        let batch = (0..BATCH_LINES)
            .map(|k| out(1, (n * BATCH_LINES + k).to_string()))
            .collect();
        writer.append_all(&id, batch);
    }
    let took = began.elapsed();
    assert!(took < Duration::from_secs(2), "append_all waited {took:?}");
    let missed = writer.missed_ever();
    assert!(missed > 0, "the queue overflowed");
    assert!(writer.flush_and_stop().is_empty());
    let lines = read(dir.path(), &id);
    let output = lines.iter().filter(|line| line.origin == Origin::Stdout);
    assert_eq!(
        output.count() as u64 + missed,
        sent as u64,
        "none lost uncounted"
    );
    let note = format!("{missed} lines of output are missing here: the disk did not keep up");
    assert!(
        lines
            .iter()
            .any(|line| line.origin == Origin::Zap && line.text == note),
        "the file says so"
    );
}

#[test]
fn a_quiet_instance_is_on_disk_without_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    writer.append(&id, out(1, "hello"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while read_log(dir.path(), &id, None).map_or(true, |l| l.is_empty()) {
        assert!(Instant::now() < deadline, "never flushed");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(writer.flush_and_stop().is_empty());
}

#[test]
fn a_torn_record_of_a_previous_run_is_ended_before_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let path = log_path(dir.path(), &id);
    fs::write(
        &path,
        "2024-02-29T12:34:56.789Z out  1 | whole\n2024-02-29T12:34:56.790Z out  1 | cut sh",
    )
    .expect("write");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    writer.append(&id, out(2, "next run"));
    assert!(writer.flush_and_stop().is_empty());
    assert_eq!(
        texts(&read(dir.path(), &id)),
        ["whole", "cut sh", "next run"]
    );
}

/// Starts a writer whose health news is collected: the error's text when
/// writing fails, "writing" when it works again.
fn start_watched(root: PathBuf) -> (LogWriter, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let writer = LogWriter::start_with(root, Rotation::default(), move |health| {
        let _ = tx.send(match health {
            LogHealth::Failing(error) => error,
            LogHealth::Writing => "writing".to_string(),
        });
    })
    .expect("start");
    (writer, rx)
}

#[test]
fn an_unwritable_directory_is_reported_once_per_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the directory should be: fails even for root.
    let root = dir.path().join("logs");
    fs::write(&root, "in the way").expect("write");
    let (writer, heard) = start_watched(root.clone());
    let (a, b) = (instance("s", "a", "h"), instance("s", "b", "h"));
    for n in 0..100 {
        writer.append(&a, out(1, n.to_string()));
        writer.append(&b, out(1, n.to_string()));
    }
    let errors = writer.flush_and_stop();
    let paths: Vec<_> = errors.iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, [log_path(&root, &a), log_path(&root, &b)]);
    // Told once: the first failure while all was well.
    let heard: Vec<_> = heard.try_iter().collect();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(
        heard[0].starts_with("cannot write the log "),
        "{}",
        heard[0]
    );
}

#[test]
fn a_full_disk_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let path = log_path(dir.path(), &id);
    std::os::unix::fs::symlink("/dev/full", &path).expect("symlink");
    let (writer, heard) = start_watched(dir.path().to_path_buf());
    for n in 0..5000 {
        writer.append(&id, out(1, n.to_string()));
    }
    let errors = writer.flush_and_stop();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].source.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(heard.try_iter().count(), 1);
}

#[test]
fn writing_resumes_and_says_how_many_lines_are_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("logs");
    fs::write(&root, "in the way").expect("write");
    let id = instance("s", "j", "h");
    let (writer, heard) = start_watched(root.clone());
    for n in 0..3 {
        writer.append(&id, out(1, format!("lost {n}")));
    }
    // Let the writer fail before the way is cleared.
    let deadline = Instant::now() + Duration::from_secs(5);
    while heard.try_recv().is_err() {
        assert!(Instant::now() < deadline, "no error heard");
        thread::sleep(Duration::from_millis(5));
    }
    fs::remove_file(&root).expect("clear");
    thread::sleep(RETRY_AFTER * 2);
    writer.append(&id, out(1, "kept"));
    let errors = writer.flush_and_stop();
    assert_eq!(errors.len(), 1);
    let heard: Vec<String> = heard.try_iter().collect();
    assert_eq!(heard, ["writing"], "told that it works again");
    let lines = read(&root, &id);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].origin, Origin::Zap);
    assert!(
        lines[0]
            .text
            .starts_with("up to 3 lines of output are missing here: "),
        "{}",
        lines[0].text
    );
    assert_eq!(lines[1].text, "kept");
}

#[test]
fn stopping_twice_and_dropping_are_harmless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = instance("s", "j", "h");
    let writer = LogWriter::start(dir.path().to_path_buf()).expect("start");
    let other = writer.clone();
    writer.append(&id, out(1, "one"));
    assert!(writer.flush_and_stop().is_empty());
    other.append(&id, out(1, "after the stop"));
    assert!(other.flush_and_stop().is_empty());
    assert_eq!(texts(&read(dir.path(), &id)), ["one"]);

    // Dropped without a stop: the thread still writes what it got.
    let id = instance("s", "k", "h");
    let dropped = LogWriter::start(dir.path().to_path_buf()).expect("start");
    dropped.append(&id, out(1, "kept"));
    drop(dropped);
    let deadline = Instant::now() + Duration::from_secs(5);
    while read_log(dir.path(), &id, None).map_or(true, |l| l.is_empty()) {
        assert!(Instant::now() < deadline, "never written");
        thread::sleep(Duration::from_millis(10));
    }
}

//! The commands against a fake running zap, and without one.

use super::*;

#[tokio::test]
async fn status_prints_the_table_of_the_running_zap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let (exit, out, err) = run!(|console| commands::status(dir.path(), false, &mut console));
    assert_eq!((exit, err.as_str()), (code::OK, ""));
    assert_eq!(out, format::status_table(&fleet(), false));
    assert!(out.starts_with("HOST  JOB"), "{out}");
    assert!(out.contains("failed at step 2 (exit 1)"), "{out}");
    zap.stop().await;
}

#[tokio::test]
async fn status_json_is_an_array_of_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let (exit, out, _) = run!(|console| commands::status(dir.path(), true, &mut console));
    assert_eq!(exit, code::OK);
    let parsed: Vec<InstanceStatus> = serde_json::from_str(&out).expect("a JSON array");
    assert_eq!(parsed, fleet());
    zap.stop().await;
}

#[tokio::test]
async fn restart_prints_the_answer_and_an_unknown_target_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let restart = Action::Restart {
        targets: vec!["web.build@n1".into()],
    };
    let (exit, out, err) = run!(|console| commands::act(dir.path(), restart, &mut console));
    assert_eq!(
        (exit, out.as_str(), err.as_str()),
        (code::OK, "restarting web.build@n1\n", "")
    );
    let unknown = Action::Stop {
        targets: vec!["web".into(), "nope".into()],
    };
    let (exit, out, err) = run!(|console| commands::act(dir.path(), unknown, &mut console));
    assert_eq!(exit, code::REFUSED);
    assert_eq!(out, "restarting web\n");
    assert_eq!(err, "zap: no system named \"nope\"\n");
    zap.stop().await;
}

#[tokio::test]
async fn logs_print_prefixed_lines_aligned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let (exit, out, err) = run!(|console| commands::logs(
        dir.path(),
        "web.build",
        false,
        None,
        &mut console,
        || panic!("a zap is running: no stored logs")
    ));
    assert_eq!((exit, err.as_str()), (code::OK, ""));
    assert_eq!(
        out,
        "\
n1    web.build[1] | compiling
node2 web.build[1] ! warning: unused
n1    web.build[1] ~ step 1 done
"
    );
    let (exit, out, err) =
        run!(
            |console| commands::logs(dir.path(), "db", false, None, &mut console, || panic!(
                "a zap is running"
            ))
        );
    assert_eq!((exit, out.as_str()), (code::REFUSED, ""));
    assert_eq!(err, "zap: no system named \"db\"\n");
    zap.stop().await;
}

#[tokio::test]
async fn follow_streams_until_the_instance_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let (exit, out, err) = tokio::time::timeout(WAIT, async {
        run!(
            |console| commands::logs(dir.path(), "web.once", true, None, &mut console, || panic!(
                "a zap is running"
            ))
        )
    })
    .await
    .expect("the stream ends with the instance");
    assert_eq!((exit, err.as_str()), (code::OK, ""));
    let texts: Vec<&str> = out
        .lines()
        .map(|line| {
            line.split_once(['|', '!', '~'])
                .map_or(line, |(_, text)| text.trim())
        })
        .collect();
    assert_eq!(
        texts,
        [
            "compiling",
            "warning: unused",
            "step 1 done",
            "live 2",
            "live 3",
            "live 4"
        ]
    );
    zap.stop().await;
}

#[tokio::test]
async fn a_follower_that_disconnects_is_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut zap = Zap::start(dir.path()).await;
    let follow = Action::Logs {
        target: "web.build".into(),
        follow: true,
        step: None,
    };
    let mut stream = client::request(dir.path(), &follow).await.expect("request");
    for _ in 0..4 {
        let reply = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a line");
        assert!(matches!(reply, Ok(Some(Reply::Line(_)))), "{reply:?}");
    }
    drop(stream);
    let seen = tokio::time::timeout(WAIT, zap.seen.recv())
        .await
        .expect("told");
    assert!(matches!(seen, Some(Seen::FollowerGone)), "{seen:?}");
    zap.stop().await;
}

#[tokio::test]
async fn without_a_running_zap_commands_say_so_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exit, out, err) = run!(|console| commands::status(dir.path(), false, &mut console));
    assert_eq!((exit, out.as_str()), (code::NOT_RUNNING, ""));
    let canonical = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(
        err,
        format!(
            "zap: no zap is running for {} (start one with `zap up`)\n",
            canonical.display()
        )
    );
    let (exit, _, _) = run!(|console| commands::act(dir.path(), Action::Down, &mut console));
    assert_eq!(exit, code::NOT_RUNNING);
}

#[tokio::test]
async fn logs_fall_back_to_stored_lines_without_a_running_zap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stored = || {
        Ok(vec![match line("n1", 0, Origin::Out, "from the file") {
            Reply::Line(entry) => entry,
            _ => unreachable!(),
        }])
    };
    let (exit, out, err) =
        run!(|console| commands::logs(dir.path(), "web.build", true, None, &mut console, stored));
    assert_eq!(exit, code::OK);
    assert_eq!(out, "n1 web.build[1] | from the file\n");
    assert!(err.contains("not following"), "{err}");
    let (exit, _, err) =
        run!(
            |console| commands::logs(dir.path(), "web.build", false, None, &mut console, || Err(
                "no log of web.build@n1 in .zap/logs".to_string()
            ))
        );
    assert_eq!(exit, code::REFUSED);
    assert!(err.starts_with("zap: no log of web.build@n1"), "{err}");
    assert!(err.contains("no zap is running"), "{err}");
}

#[tokio::test]
async fn stored_logs_are_read_from_dot_zap_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = crate::logs::logs_dir(dir.path());
    std::fs::create_dir_all(&root).expect("logs dir");
    let id = InstanceId {
        job: crate::model::JobName {
            system: "web".into(),
            job: "build".into(),
        },
        host: crate::model::HostName("n1".into()),
    };
    std::fs::write(
        crate::logs::log_path(&root, &id),
        "2024-02-29T12:34:56.789Z out  1 | compiling\n2024-02-29T12:34:57.000Z err  2 | oops\n",
    )
    .expect("write log");
    let entries = commands::read_stored(dir.path(), std::slice::from_ref(&id), Some(2))
        .expect("stored lines");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].line.text, "oops");
    assert_eq!(entries[0].line.origin, Origin::Err);
    let mut other = id.clone();
    other.host = crate::model::HostName("n9".into());
    let error = commands::read_stored(dir.path(), &[other], None).expect_err("no log");
    assert!(error.contains("web.build@n9"), "{error}");
}

#[tokio::test]
async fn down_waits_until_the_zap_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let (exit, out, err) = tokio::time::timeout(WAIT, async {
        run!(|console| commands::act(dir.path(), Action::Down, &mut console))
    })
    .await
    .expect("down returns");
    assert_eq!(
        (exit, out.as_str(), err.as_str()),
        (code::OK, "stopping every job\n", "")
    );
    assert!(!zap.socket.exists());
    assert!(!client::is_running(dir.path()).await);
    zap.stop().await;
}

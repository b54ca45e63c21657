//! The socket itself: one zap per folder, stale files, its mode and path, and clients that misbehave.

use super::*;

#[tokio::test]
async fn a_second_zap_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let error = Server::bind_for(dir.path()).await.expect_err("refused");
    let pid = std::process::id();
    assert!(
        matches!(error, ControlError::AlreadyRunning { pid: Some(p), .. } if p == pid),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("zap is already running here (pid {pid}): use `zap status`, `zap down`")
    );
    // The refused bind left the first one's socket alone.
    let (exit, _, _) = run!(|console| commands::status(dir.path(), false, &mut console));
    assert_eq!(exit, code::OK);
    zap.stop().await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = path::socket_path(dir.path());
    std::fs::create_dir_all(socket.parent().expect("parent")).expect(".zap");
    // A socket file whose zap died: nothing listens on it any more.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("old socket"));
    assert!(socket.exists());
    let zap = Zap::start(dir.path()).await;
    assert_eq!(zap.socket, socket);
    let (exit, _, _) = run!(|console| commands::status(dir.path(), false, &mut console));
    assert_eq!(exit, code::OK);
    zap.stop().await;
}

#[tokio::test]
async fn the_socket_is_private_and_cleaned_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::bind_for(dir.path()).await.expect("bind");
    let socket = server.path().to_path_buf();
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let pid_file = socket.with_file_name("zap.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file").trim(),
        std::process::id().to_string()
    );
    // Nothing of the staging directory is left.
    let names: Vec<String> = std::fs::read_dir(socket.parent().expect("parent"))
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    drop(server);
    assert!(!socket.exists());
    assert!(!pid_file.exists());
}

/// A zap with a tiny reply buffer, and a client that asked for a flood of
/// lines and does not read them.
async fn flooded(write_timeout: Duration) -> (tempfile::TempDir, Zap, UnixStream) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = path::socket_path(dir.path());
    let limits = Limits {
        reply_buffer: 8,
        write_timeout,
        ..Limits::default()
    };
    let server = Server::bind_with(&socket, limits).await.expect("bind");
    let mut zap = Zap::serve(server);
    let mut stuck = UnixStream::connect(&socket).await.expect("connect");
    stuck
        .write_all(b"{\"action\":\"logs\",\"target\":\"flood\",\"follow\":true}\n")
        .await
        .expect("request");
    // The flood stops by itself: `send` refuses once the buffer is full,
    // without ever waiting for the client.
    let seen = tokio::time::timeout(WAIT, zap.seen.recv())
        .await
        .expect("stopped");
    assert!(
        matches!(seen, Some(Seen::FloodStopped(sent)) if sent > 8),
        "{seen:?}"
    );
    // The supervisor still answers others meanwhile.
    let (exit, _, _) = run!(|console| commands::status(dir.path(), false, &mut console));
    assert_eq!(exit, code::OK);
    (dir, zap, stuck)
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_block_the_supervisor() {
    let (_dir, zap, mut stuck) = flooded(Duration::from_millis(200)).await;
    // Past the write timeout the connection is closed: reading now gets
    // what the socket buffers held, cut off without an `end`.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stuck.read_to_end(&mut rest))
        .await
        .expect("closed")
        .expect("read");
    assert!(!rest.is_empty());
    assert!(!rest.ends_with(b"{\"reply\":\"end\"}\n"));
    zap.stop().await;
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_before_it_is_dropped() {
    let (_dir, zap, stuck) = flooded(Duration::from_secs(30)).await;
    // Reading late: the lines queued before the loss, then why it ends.
    let mut lines = BufReader::new(stuck).lines();
    let mut last_two = Vec::new();
    while let Some(line) = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("lines")
        .expect("read")
    {
        last_two.push(line);
        if last_two.len() > 2 {
            last_two.remove(0);
        }
    }
    let error: Reply = serde_json::from_str(&last_two[0]).expect("a reply");
    assert!(
        matches!(&error, Reply::Error { message } if message.contains("fell too far behind")),
        "{error:?}"
    );
    assert_eq!(last_two[1], "{\"reply\":\"end\"}");
    zap.stop().await;
}

#[tokio::test]
async fn a_folder_with_a_long_path_gets_a_short_socket_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = dir.path().join("a-rather-long-folder-name-".repeat(5));
    std::fs::create_dir_all(&deep).expect("deep dir");
    assert!(deep.join(".zap/zap.sock").as_os_str().len() > path::MAX_SOCKET_PATH);
    let zap = Zap::start(&deep).await;
    assert!(!zap.socket.starts_with(&deep), "{:?}", zap.socket);
    assert!(path::fits(&zap.socket));
    let pointer = deep.join(".zap").join(path::POINTER_FILE);
    assert_eq!(
        std::fs::read_to_string(&pointer).expect("pointer").trim(),
        zap.socket.display().to_string()
    );
    let (exit, out, _) = run!(|console| commands::status(&deep, false, &mut console));
    assert_eq!(exit, code::OK, "{out}");
    let socket = zap.socket.clone();
    zap.stop().await;
    assert!(!socket.exists());
    assert!(!pointer.exists());
}

#[tokio::test]
async fn a_request_zap_does_not_understand_gets_an_error_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zap = Zap::start(dir.path()).await;
    let mut stream = UnixStream::connect(&zap.socket).await.expect("connect");
    stream
        .write_all(b"{\"action\":\"dance\"}\n")
        .await
        .expect("write");
    let mut lines = BufReader::new(stream).lines();
    let first = lines.next_line().await.expect("read").expect("a line");
    let reply: Reply = serde_json::from_str(&first).expect("a reply");
    assert!(
        matches!(&reply, Reply::Error { message } if message.starts_with("not a request zap understands")),
        "{reply:?}"
    );
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("{\"reply\":\"end\"}")
    );
    assert_eq!(lines.next_line().await.expect("read"), None);
    zap.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = path::socket_path(dir.path());
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let zap = Zap::serve(Server::bind_with(&socket, limits).await.expect("bind"));
    let follow = Action::Logs {
        target: "web.build".into(),
        follow: true,
        step: None,
    };
    let mut held = client::request(dir.path(), &follow).await.expect("request");
    let first = tokio::time::timeout(WAIT, held.next())
        .await
        .expect("a line");
    assert!(matches!(first, Ok(Some(Reply::Line(_)))), "{first:?}");
    let replies = client::request(dir.path(), &Action::Status)
        .await
        .expect("connect")
        .collect()
        .await
        .expect("replies");
    assert_eq!(
        replies,
        [Reply::Error {
            message: "too many connections to this zap: try again".into()
        }]
    );
    zap.stop().await;
}

#[tokio::test]
async fn the_server_stops_when_the_supervisor_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::bind_for(dir.path()).await.expect("bind");
    let socket = server.path().to_path_buf();
    let (tx, rx) = mpsc::channel(1);
    let (done_tx, done) = oneshot::channel();
    tokio::spawn(async move {
        server.run(tx).await;
        let _ = done_tx.send(());
    });
    drop(rx);
    tokio::time::timeout(WAIT, done)
        .await
        .expect("run returns")
        .expect("sent");
    assert!(!socket.exists());
}

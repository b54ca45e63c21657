//! Job output: the in-memory ring of recent lines and the rotated files under `.zap/logs/`.

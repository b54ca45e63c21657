//! Jobs with `pty = true`: their shell gets a pseudo-terminal, so programs
//! that draw progress bars or colour only for a terminal behave as they
//! would in one. stdout and stderr then merge, as in any terminal.
//!
//! The wrapper script still arrives on the shell's stdin, now the terminal,
//! so the terminal starts raw and silent: no echo (the script is not shown
//! back), no line editing or line-length limit, no signal keys or flow
//! control (a byte 0x03 in a script is not Ctrl+C), no CR→NL on input. The
//! shell reads exactly the script's length (`head -c`), since a raw terminal
//! has no end of file. Output keeps its usual NL→CRLF, which the decoder
//! undoes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use russh::Pty;

/// The terminal type the job sees.
pub const TERM: &str = "xterm-256color";
/// Columns and rows of the job's terminal.
pub const SIZE: (u16, u16) = (200, 50);

/// The launch command for a pty job whose script is `script_len` bytes.
pub fn launch_command(script_len: usize) -> String {
    format!("exec /bin/sh -c 'eval \"$(head -c {script_len})\"'")
}

/// The terminal modes above, as an SSH `pty-req` carries them.
pub fn ssh_modes() -> Vec<(Pty, u32)> {
    vec![
        (Pty::ECHO, 0),
        (Pty::ICANON, 0),
        (Pty::ISIG, 0),
        (Pty::IEXTEN, 0),
        (Pty::ICRNL, 0),
        (Pty::IXON, 0),
        (Pty::OPOST, 1),
        (Pty::ONLCR, 1),
    ]
}

/// A pseudo-terminal on this machine: the controlling side zap reads and
/// writes, and the side the job's shell gets as stdin, stdout and stderr.
pub struct LocalPty {
    pub controller: OwnedFd,
    pub terminal: OwnedFd,
}

impl LocalPty {
    /// Opens a pty with the modes above.
    pub fn open() -> std::io::Result<LocalPty> {
        let (mut controller, mut terminal) = (-1, -1);
        let size = libc::winsize {
            ws_col: SIZE.0,
            ws_row: SIZE.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors into the integers we pass;
        // the name buffer is null (not wanted), the termios null (set below).
        let result = unsafe {
            libc::openpty(
                &mut controller,
                &mut terminal,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openpty succeeded, so both are open descriptors we own.
        let (controller, terminal) = unsafe {
            (
                OwnedFd::from_raw_fd(controller),
                OwnedFd::from_raw_fd(terminal),
            )
        };
        set_raw_modes(&terminal)?;
        Ok(LocalPty {
            controller,
            terminal,
        })
    }
}

fn set_raw_modes(terminal: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it from an open fd.
    let mut modes: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(terminal.as_raw_fd(), &mut modes) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    modes.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG | libc::IEXTEN);
    modes.c_iflag &= !(libc::ICRNL | libc::IXON);
    modes.c_oflag |= libc::OPOST | libc::ONLCR;
    modes.c_cc[libc::VMIN] = 1;
    modes.c_cc[libc::VTIME] = 0;
    // SAFETY: as above, on the same open descriptor.
    if unsafe { libc::tcsetattr(terminal.as_raw_fd(), libc::TCSANOW, &modes) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

//! Job results users can trust: Proxmox reports no exit code (a container whose entrypoint
//! ended is just `stopped`), so where the image has a shell the operator runs the Pod's command
//! under a small POSIX `sh` wrapper that prints the command's exit status on the console, in a
//! terminal control sequence, as its last output. The console follower ([`super::console`])
//! takes it out of the stream (the app's own output is unchanged in `kubectl logs`; a terminal
//! ignores the sequence) and keeps the code with the run; the Pod's container is then reported
//! `terminated` with it, and the Pod `Failed` or `Succeeded`.
//!
//! When there is a shell: the Pod's command starts with one (`sh`, `/bin/sh`, `bash`, ...),
//! or the Pod says so with the annotation [`SHELL_ANNOTATION`] (`pve.lxc.dev/shell: /bin/sh`;
//! `none` turns the wrapper off). The wrapper needs the Pod's `command` (the image's
//! entrypoint is not known before the container is made). Without a shell, or when no marker
//! came (the console was not attached when the app ended), the Pod says `ExitCodeUnknown`.
//!
//! The wrapper (`<shell> -c SCRIPT pve-lxc-app <command> <args>`) runs the command as its
//! child with the console as stdin, forwards the stop signals (`TERM INT HUP QUIT USR1 USR2`,
//! so `pct shutdown` still stops the app gracefully), waits for it, prints the marker and
//! exits with the same status (a signal is `128 + n`, as a container runtime reports it). The
//! script has no single quote and no control character: Proxmox's `entrypoint` pattern and
//! LXC's `lxc.init.cmd` splitting (whole-word quotes only) take it as one word.

use k8s_openapi::api::core::v1::Pod;

/// The Pod annotation naming the shell of the image (an absolute path or a name in `$PATH`),
/// or `none`.
pub const SHELL_ANNOTATION: &str = "pve.lxc.dev/shell";

/// `$0` of the wrapper (shown by `ps` in the container).
pub const WRAPPER_NAME: &str = "pve-lxc-app";

/// The bytes before the exit status: an OSC sequence (`ESC ] 7770 ;`), ignored by terminals.
pub const MARKER_START: &[u8] = b"\x1b]7770;pve.lxc.dev/exit-code=";
/// The byte after the exit status (BEL, the end of an OSC sequence).
pub const MARKER_END: u8 = 0x07;

/// The wrapper script (`"$@"` is the Pod's command and args).
pub const SCRIPT: &str = concat!(
    r#"exec 3<&0; "$@" <&3 3<&- & p=$!; "#,
    r#"for s in TERM INT HUP QUIT USR1 USR2; do trap "kill -$s $p 2>/dev/null" $s; done; "#,
    r#"while :; do wait $p; c=$?; kill -0 $p 2>/dev/null || break; done; "#,
    r#"printf "\033]7770;pve.lxc.dev/exit-code=%d\007" "$c"; exit "$c""#
);

/// Shells the wrapper can run in (the last part of a command's first item).
const SHELLS: &[&str] = &["sh", "ash", "dash", "bash", "ksh", "mksh", "zsh"];

/// The shell the Pod's image has, if the Pod tells (its annotation, or a command that starts
/// with a shell).
pub fn shell_of(pod: &Pod, command: &[String]) -> Option<String> {
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SHELL_ANNOTATION))
        .map(|s| s.trim().to_string());
    match annotated.as_deref() {
        Some("none") => return None,
        Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => return Some(s.to_string()),
        _ => {}
    }
    let first = command.first()?;
    let name = first.rsplit('/').next().unwrap_or(first);
    SHELLS.contains(&name).then(|| first.clone())
}

/// `command` and `args` run under the wrapper with `shell`: the new command (args empty).
pub fn wrap(shell: &str, command: &[String], args: &[String]) -> Vec<String> {
    [shell, "-c", SCRIPT, WRAPPER_NAME]
        .iter()
        .map(|s| s.to_string())
        .chain(command.iter().cloned())
        .chain(args.iter().cloned())
        .collect()
}

/// Longest digits (with a sign) an exit-status marker may carry.
const MAX_DIGITS: usize = 11;

/// Takes the exit-status markers out of a console stream (a marker may be split across reads).
#[derive(Debug, Clone, Default)]
pub struct MarkerScanner {
    held: Vec<u8>,
}

impl MarkerScanner {
    /// The output of `chunk` without markers, and the status of the last marker completed in
    /// it. Bytes that may begin a marker are held until the next chunk decides.
    pub fn scan(&mut self, chunk: &[u8]) -> (Vec<u8>, Option<i32>) {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut code = None;
        let mut i = 0;
        while i < buf.len() {
            if buf[i] != MARKER_START[0] {
                out.push(buf[i]);
                i += 1;
                continue;
            }
            let rest = &buf[i..];
            let n = rest.len().min(MARKER_START.len());
            if rest[..n] != MARKER_START[..n] {
                out.push(buf[i]);
                i += 1;
                continue;
            }
            if rest.len() < MARKER_START.len() {
                // a marker's start cut at the end of the chunk
                self.held = rest.to_vec();
                break;
            }
            let body = &rest[MARKER_START.len()..];
            let digits = body
                .iter()
                .take(MAX_DIGITS + 1)
                .take_while(|b| b.is_ascii_digit() || **b == b'-')
                .count();
            match body.get(digits) {
                Some(&MARKER_END) if digits > 0 => {
                    code = std::str::from_utf8(&body[..digits]).ok().and_then(|s| s.parse().ok());
                    i += MARKER_START.len() + digits + 1;
                }
                None if digits <= MAX_DIGITS => {
                    self.held = rest.to_vec();
                    break;
                }
                // not a marker after all: the bytes are the app's
                _ => {
                    out.push(buf[i]);
                    i += 1;
                }
            }
        }
        (out, code)
    }

    /// Bytes held back when the stream ends: they were the app's.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn annotated(value: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: Some([(SHELL_ANNOTATION.to_string(), value.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_command_that_starts_with_a_shell_or_an_annotation_names_the_shell() {
        let plain = Pod::default();
        assert_eq!(
            shell_of(&plain, &s(&["/bin/sh", "-c", "x"])).as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(shell_of(&plain, &s(&["bash", "-c", "x"])).as_deref(), Some("bash"));
        assert_eq!(shell_of(&plain, &s(&["/app/run"])), None);
        assert_eq!(shell_of(&plain, &[]), None);
        assert_eq!(
            shell_of(&annotated("/bin/busybox-sh"), &s(&["/app/run"])).as_deref(),
            Some("/bin/busybox-sh")
        );
        assert_eq!(shell_of(&annotated("none"), &s(&["/bin/sh", "-c", "x"])), None);
    }

    #[test]
    fn the_wrapper_script_passes_proxmox_and_lxc_as_one_word() {
        // Proxmox's entrypoint pattern: no control characters
        assert!(!SCRIPT.chars().any(|c| c.is_ascii_control()));
        // LXC strips quotes of whole words only: no single quote inside
        assert!(!SCRIPT.contains('\''));
        let cmd = wrap("/bin/sh", &s(&["/app/run"]), &s(&["--once"]));
        assert_eq!(cmd[..2], s(&["/bin/sh", "-c"]));
        assert_eq!(cmd[3..], s(&[WRAPPER_NAME, "/app/run", "--once"]));
    }

    #[test]
    fn the_wrapper_reports_the_commands_exit_status_and_exits_with_it() {
        let Ok(sh) = std::process::Command::new("/bin/sh").arg("-c").arg("true").status() else {
            return;
        };
        assert!(sh.success());
        for (cmd, code, printed) in [
            ("echo hello; exit 3", 3, "hello\n"),
            ("echo fine", 0, "fine\n"),
            ("kill -9 $$", 137, ""),
        ] {
            let out = std::process::Command::new("/bin/sh")
                .args(wrap("/bin/sh", &s(&["/bin/sh", "-c", cmd]), &[]).iter().skip(1))
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(code), "{cmd}");
            let (clean, got) = MarkerScanner::default().scan(&out.stdout);
            assert_eq!(got, Some(code), "{cmd}: {:?}", String::from_utf8_lossy(&out.stdout));
            assert_eq!(String::from_utf8_lossy(&clean), printed, "{cmd}");
        }
    }

    #[test]
    fn markers_are_taken_out_of_the_stream_even_when_split_across_reads() {
        let mut m = MarkerScanner::default();
        let (a, c) = m.scan(b"line 1\r\nlast\x1b]7770;pve.lxc.dev/exit");
        assert_eq!((a.as_slice(), c), (&b"line 1\r\nlast"[..], None));
        let (b, c) = m.scan(b"-code=42");
        assert_eq!((b.as_slice(), c), (&b""[..], None));
        let (b, c) = m.scan(b"\x07");
        assert_eq!((b.as_slice(), c), (&b""[..], Some(42)));
        // other escape sequences and look-alikes stay the app's
        let (b, c) = m.scan(b"\x1b[1mbold\x1b]7770;pve.lxc.dev/exit-code=x\x07");
        assert_eq!(c, None);
        assert_eq!(b, b"\x1b[1mbold\x1b]7770;pve.lxc.dev/exit-code=x\x07");
        let (b, _) = m.scan(b"\x1b]77");
        assert!(b.is_empty());
        assert_eq!(m.finish(), b"\x1b]77");
    }
}

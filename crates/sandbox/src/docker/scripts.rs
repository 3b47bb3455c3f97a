//! The small POSIX `sh` programs the backend runs inside containers, and the parser for
//! the wrapper's one line of bookkeeping.
//!
//! Only `sh` is assumed (any image that can be a sandbox has one). Both scripts use
//! builtins only (`read`, `kill`, `set`, globbing): they start no processes, so they
//! still work when a fork bomb has filled the PID limit. Docker's exec joins the
//! container's cgroup by migration, which the PID limit does not stop, so the exec
//! itself always starts.

/// Runs argv (`$@`) after printing its pid on stderr as `@dockhand-pid=<pid>`. Docker
/// makes every exec a session leader, so the pid is also the session and process group
/// id that [`KILL_SCRIPT`] uses to find what the command started. The line comes before
/// `exec`, so nothing of the command's can precede it.
pub(crate) const WRAPPER: &str = r#"printf '@dockhand-pid=%s\n' "$$" >&2; exec "$@""#;

/// Like [`WRAPPER`] but with stderr joined to stdout after the pid line, so a shell's two
/// streams keep the order it wrote them in (one pipe instead of two).
pub(crate) const SHELL_WRAPPER: &str = r#"printf '@dockhand-pid=%s\n' "$$" >&2; exec "$@" 2>&1"#;

/// Kills processes in the container. `$1` is `all` (everything but PID 1, the init's own
/// `sleep`, and the script) or a pid (that process, its session, its process groups and
/// its descendants). Run it as the sandbox user: it can signal exactly the agent's
/// processes, and never PID 1. It returns once the processes are gone.
///
/// Why not `kill -9 -1`: it also kills the init's only child, the `sleep`, and the init
/// then exits and stops the container. The `sleep` is the oldest child of PID 1; orphans
/// reparented there later are younger. Each pass stops every match first (a stopped
/// process cannot fork) and then kills them; passes repeat until one finds nothing new,
/// so a fork bomb racing the scan is caught on the next pass. A process once sent
/// SIGKILL cannot fork any more and is not signalled again, but it can linger for a
/// moment in uninterruptible sleep (fuse-overlayfs I/O, for one), so the script then
/// waits, briefly and boundedly, for each to be gone. Zombies are skipped: they are
/// already dead and the init reaps them.
pub(crate) const KILL_SCRIPT: &str = r#"me=$$ spare= root= first= killed=" "
if [ "$1" = all ]; then
  for d in /proc/[0-9]*; do
    read -r l < "$d/stat" 2>/dev/null || continue
    set -- ${l##*) }
    [ "$2" = 1 ] || continue
    if [ -z "$first" ] || [ "${20}" -lt "$first" ]; then first=${20} spare=${d#/proc/}; fi
  done
else
  root=$1
fi
tree=" $root " pass=0
while :; do
  pass=$((pass + 1)) hit=
  for sig in STOP KILL; do
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      case $p in 1|"$me"|"$spare") continue ;; esac
      read -r l < "$d/stat" 2>/dev/null || continue
      set -- ${l##*) }
      if [ -n "$root" ]; then
        case $tree in *" $2 "*|*" $3 "*|*" $4 "*|*" $p "*) ;; *) continue ;; esac
        tree="$tree$p "
      fi
      case $killed in *" $p "*) continue ;; esac
      [ "$1" = Z ] && continue
      kill -"$sig" "$p" 2>/dev/null || continue
      hit=1
      [ "$sig" = KILL ] && killed="$killed$p "
    done
  done
  [ -n "$hit" ] || break
  if [ "$pass" -ge 1000 ]; then echo "processes kept coming back after $pass passes" >&2; exit 1; fi
done
waits=0
for p in $killed; do
  while read -r l < "/proc/$p/stat" 2>/dev/null; do
    set -- ${l##*) }
    [ "$1" = Z ] && break
    waits=$((waits + 1))
    if [ "$waits" -ge 1000 ]; then echo "process $p would not die" >&2; exit 1; fi
    sleep 0.01 2>/dev/null || :
  done
done
exit 0"#;

/// argv running `script` under `sh -c` with `args` as `$1`, `$2`, ….
pub(crate) fn sh_argv(script: &str, args: &[&str]) -> Vec<String> {
    ["sh", "-c", script, "sh"]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// `sh -c <wrapper> sh argv…`.
pub(crate) fn wrapped(wrapper: &str, argv: Vec<String>) -> Vec<String> {
    let mut all = sh_argv(wrapper, &[]);
    all.extend(argv);
    all
}

const PID_PREFIX: &[u8] = b"@dockhand-pid=";

/// The longest pid line we wait for before deciding the stream has none.
const MAX_PID_LINE: usize = 64;

/// Takes the wrapper's pid line off the front of a stderr stream.
#[derive(Debug, Default)]
pub(crate) struct PidLine {
    /// Bytes held back until the line is complete.
    pending: Vec<u8>,
    /// Set once the front of the stream has been decided.
    done: bool,
    /// The pid, when the line was there.
    pub(crate) pid: Option<u32>,
}

impl PidLine {
    /// Feeds a chunk of stderr; returns what belongs to the command.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.done {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let Some(newline) = self.pending.iter().position(|b| *b == b'\n') else {
            if self.pending.len() > MAX_PID_LINE
                || !PID_PREFIX
                    .starts_with(&self.pending[..self.pending.len().min(PID_PREFIX.len())])
            {
                // Not our line (the wrapper never ran, e.g. no `sh` in the image).
                return self.finish();
            }
            return Vec::new();
        };
        let line = &self.pending[..newline];
        let pid = line
            .strip_prefix(PID_PREFIX)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse::<u32>().ok())
            .filter(|pid| *pid > 1);
        match pid {
            Some(pid) => {
                self.pid = Some(pid);
                self.done = true;
                self.pending.drain(..=newline);
                std::mem::take(&mut self.pending)
            }
            None => self.finish(),
        }
    }

    /// Ends the search: whatever was held back is the command's.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.done = true;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
#[path = "scripts_tests.rs"]
mod tests;

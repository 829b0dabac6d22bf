//! What the kernel says about the server and PostgreSQL (`/proc`): CPU time
//! as clock ticks, resident memory.

use std::collections::HashMap;

/// Seconds per clock tick of `/proc/PID/stat`'s times.
pub(crate) fn tick_seconds() -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The fields of `/proc/PID/stat` after the command (which may contain
/// spaces, hence the search for the last `)`); field 3 is the first.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split(' ')
            .skip(1) // the state, a letter
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime of one process, and cutime + cstime (its reaped
/// children's), in ticks.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    // After the state: ppid pgrp session tty tpgid flags minflt cminflt
    // majflt cmajflt utime stime cutime cstime (fields 4 to 17).
    let f = stat_fields(pid)?;
    Some((f.get(10)? + f.get(11)?, f.get(12)? + f.get(13)?))
}

/// The CPU time a process has used, in ticks (0 if it is gone).
pub(crate) fn process_ticks(pid: u32) -> u64 {
    cpu_ticks(pid).map_or(0, |(own, _)| own)
}

/// Every `postgres` process's own CPU ticks, and the ticks of children the
/// postmaster has reaped (so that a backend exiting within a slice is still
/// counted).
#[derive(Clone, Default)]
pub(crate) struct PostgresTicks {
    pub(crate) by_pid: HashMap<u32, u64>,
    pub(crate) reaped: u64,
}

impl PostgresTicks {
    pub(crate) fn read() -> Self {
        let mut out = Self::default();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end() != "postgres" {
                continue;
            }
            if let Some((own, children)) = cpu_ticks(pid) {
                out.by_pid.insert(pid, own);
                out.reaped += children;
            }
        }
        out
    }

    /// All of PostgreSQL's CPU since `earlier`, in ticks.
    pub(crate) fn total_since(&self, earlier: &Self) -> u64 {
        let now: u64 = self.by_pid.values().sum::<u64>() + self.reaped;
        let then: u64 = earlier.by_pid.values().sum::<u64>() + earlier.reaped;
        now.saturating_sub(then)
    }

    /// The CPU of the processes `pids` since `earlier` (a process started
    /// since then counts in full), in ticks.
    pub(crate) fn of_since(&self, earlier: &Self, pids: &[u32]) -> u64 {
        pids.iter()
            .filter_map(|pid| {
                let now = self.by_pid.get(pid)?;
                Some(now.saturating_sub(earlier.by_pid.get(pid).copied().unwrap_or(0)))
            })
            .sum()
    }
}

/// A line of `/proc/PID/status` in kB (e.g. `VmRSS`, `VmHWM`), as MiB.
pub(crate) fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time in seconds: the server's, all of PostgreSQL's, and that of
/// PostgreSQL's backends on the bench database (the machine's other
/// databases may be busy too).
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Cpu {
    pub(crate) keyward: f64,
    pub(crate) postgres: f64,
    pub(crate) postgres_db: f64,
}

impl std::ops::AddAssign for Cpu {
    fn add_assign(&mut self, other: Self) {
        self.keyward += other.keyward;
        self.postgres += other.postgres;
        self.postgres_db += other.postgres_db;
    }
}

impl Cpu {
    /// Per request, in microseconds.
    pub(crate) fn per_request_us(self, requests: usize) -> Self {
        let per = |s: f64| s * 1e6 / requests.max(1) as f64;
        Self {
            keyward: per(self.keyward),
            postgres: per(self.postgres),
            postgres_db: per(self.postgres_db),
        }
    }
}

/// The CPU counters at the start of a slice.
pub(crate) struct CpuMark {
    pid: u32,
    keyward: u64,
    postgres: PostgresTicks,
}

impl CpuMark {
    pub(crate) fn now(server_pid: u32) -> Self {
        Self {
            pid: server_pid,
            keyward: process_ticks(server_pid),
            postgres: PostgresTicks::read(),
        }
    }

    /// What was spent since the mark; `backends` are the bench database's.
    pub(crate) fn since(&self, backends: &[u32]) -> Cpu {
        let postgres = PostgresTicks::read();
        let tick = tick_seconds();
        Cpu {
            keyward: process_ticks(self.pid).saturating_sub(self.keyward) as f64 * tick,
            postgres: postgres.total_since(&self.postgres) as f64 * tick,
            postgres_db: postgres.of_since(&self.postgres, backends) as f64 * tick,
        }
    }
}

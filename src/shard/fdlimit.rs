//! Open-file limit: every client is a file descriptor, so `maxclients`
//! only holds if `RLIMIT_NOFILE` fits it. At start the limit is raised to
//! fit `maxclients` plus a reserve for the server's own files; where the
//! system does not allow that, `maxclients` is lowered to fit, with a log
//! line (what Redis does). A client past `maxclients` is then refused with
//! an error reply, instead of the accept failing with EMFILE.

/// Descriptors the server keeps for itself: Redis's 32 (logs, config,
/// rewrite files, ...) plus, per shard, its ring, listener, AOF segment,
/// the next segment prepared ahead and the shard directory.
pub fn reserved_fds(nshards: usize) -> u64 {
    32 + 8 * nshards as u64
}

/// The current (soft, hard) limit.
fn get_limit() -> Option<(u64, u64)> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    Some((rl.rlim_cur, rl.rlim_max))
}

fn set_limit(soft: u64, hard: u64) -> Result<(), std::io::Error> {
    let rl = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raise the soft limit (and the hard one, where privileged) towards
/// `want`; returns the soft limit in force afterwards.
fn raise_to(want: u64) -> Option<u64> {
    let (soft, hard) = get_limit()?;
    if soft >= want {
        return Some(soft);
    }
    // Privileged: past the hard limit (up to the kernel's nr_open).
    if set_limit(want, want.max(hard)).is_ok() {
        return Some(want);
    }
    // Unprivileged: as far as the hard limit allows.
    let best = want.min(hard);
    if best > soft && set_limit(best, hard).is_ok() {
        return Some(best);
    }
    Some(soft)
}

/// At start: make the limit fit `maxclients`, or lower `maxclients` to
/// fit the limit. Returns the `maxclients` to run with, or an error when
/// the limit leaves no room for a single client.
pub fn fit_maxclients(maxclients: u64, nshards: usize) -> Result<u64, String> {
    if crate::persist::failpoint("fd-limit-unfitted") {
        // Tests of the accept backoff need a limit maxclients does not fit.
        return Ok(maxclients);
    }
    let reserve = reserved_fds(nshards);
    let want = maxclients.saturating_add(reserve);
    let Some(got) = raise_to(want) else {
        crate::log("cannot read RLIMIT_NOFILE; leaving maxclients as configured");
        return Ok(maxclients);
    };
    if got >= want {
        return Ok(maxclients);
    }
    let fit = clients_that_fit(got, reserve)
        .ok_or_else(|| format!("the open file limit ('ulimit -n') of {got} is not enough to start: at least {} is needed for {nshards} shard(s)", reserve + 1))?;
    crate::log(&format!(
        "maxclients {maxclients} needs {want} open files, but the limit ('ulimit -n') is {got} and could not be raised; \
         maxclients reduced to {fit}. Raise 'ulimit -n' for more clients"
    ));
    Ok(fit)
}

/// CONFIG SET maxclients: the same fitting, but a value that does not fit
/// is refused rather than lowered (as Redis does).
pub fn check_maxclients(maxclients: u64, nshards: usize) -> Result<(), String> {
    let reserve = reserved_fds(nshards);
    let want = maxclients.saturating_add(reserve);
    match raise_to(want) {
        Some(got) if got < want => Err(format!(
            "The operating system is not able to handle the specified number of clients, try with {}",
            clients_that_fit(got, reserve).unwrap_or(0)
        )),
        _ => Ok(()),
    }
}

/// Clients that fit in `limit` descriptors after the reserve (None: none).
fn clients_that_fit(limit: u64, reserve: u64) -> Option<u64> {
    limit.checked_sub(reserve).filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fitting_keeps_the_reserve() {
        assert_eq!(super::clients_that_fit(1024, super::reserved_fds(2)), Some(1024 - 48));
        assert_eq!(super::clients_that_fit(48, 48), None);
        assert_eq!(super::clients_that_fit(10, 48), None);
    }
}

//! CPU pinning: which CPUs this process may use, and pinning a thread to one.
//!
//! Linux only (`sched_getaffinity` / `sched_setaffinity` through libc). On
//! other systems every call returns [`AffinityError::Unsupported`] and the
//! benchmark runs unpinned, saying so.
#![allow(unsafe_code)]

use core::fmt;

/// Why a CPU set could not be read or a thread could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AffinityError {
    /// This operating system has no `sched_setaffinity`.
    Unsupported,
    /// The CPU number does not fit in a `cpu_set_t`.
    CpuOutOfRange(usize),
    /// The system call failed with this `errno`.
    Os(i32),
}

impl fmt::Display for AffinityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("CPU pinning is not supported on this system"),
            Self::CpuOutOfRange(cpu) => write!(f, "CPU {cpu} does not fit in a cpu_set_t"),
            Self::Os(errno) => write!(
                f,
                "sched_setaffinity/sched_getaffinity failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl core::error::Error for AffinityError {}

/// The CPUs the calling thread may run on, in ascending order.
///
/// # Errors
/// [`AffinityError::Os`] if `sched_getaffinity` fails,
/// [`AffinityError::Unsupported`] off Linux.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Result<Vec<usize>, AffinityError> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t and we pass its exact size;
    // pid 0 means the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(AffinityError::Os(last_errno()));
    }
    let max = 8 * core::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET only reads the set; `cpu` is below the set's bit size.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// [`AffinityError::CpuOutOfRange`] for a CPU number beyond `cpu_set_t`,
/// [`AffinityError::Os`] if the kernel refuses (e.g. the CPU is not in the
/// process's cpuset), [`AffinityError::Unsupported`] off Linux.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> Result<(), AffinityError> {
    if cpu >= 8 * core::mem::size_of::<libc::cpu_set_t>() {
        return Err(AffinityError::CpuOutOfRange(cpu));
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cpu` was checked to be within the set's bit size just above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and we pass its exact size; pid 0
    // means the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(AffinityError::Os(last_errno()));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The CPUs this process may use (unsupported on this system).
///
/// # Errors
/// Always [`AffinityError::Unsupported`].
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Result<Vec<usize>, AffinityError> {
    Err(AffinityError::Unsupported)
}

/// Pins the calling thread (unsupported on this system).
///
/// # Errors
/// Always [`AffinityError::Unsupported`].
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpu: usize) -> Result<(), AffinityError> {
    Err(AffinityError::Unsupported)
}

#[cfg(all(test, target_os = "linux"))]
mod test {
    use super::*;

    #[test]
    fn pin_to_an_allowed_cpu_and_read_it_back() {
        let before = allowed_cpus().unwrap();
        assert!(!before.is_empty());
        let cpu = *before.last().unwrap();
        // A thread of its own, so the test harness thread stays unpinned.
        let after = std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(after, vec![cpu]);
    }

    #[test]
    fn out_of_range_cpu_is_an_error() {
        assert_eq!(
            pin_current_thread(1 << 20),
            Err(AffinityError::CpuOutOfRange(1 << 20))
        );
    }
}

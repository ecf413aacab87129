//! The listening socket (SO_REUSEPORT: every shard listens on the same
//! port and the kernel spreads connections), and the small socket calls
//! around accepting a client.

use std::os::fd::RawFd;

pub fn make_listener(bind: &str, port: u16) -> Result<RawFd, String> {
    let ip: std::net::Ipv4Addr = bind.parse().map_err(|e| format!("bind address '{}': {}", bind, e))?;
    // SAFETY: plain socket syscalls on a fresh fd; every result is checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let one: libc::c_int = 1;
        let sz = std::mem::size_of::<libc::c_int>() as u32;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one as *const _ as *const _, sz);
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &one as *const _ as *const _, sz) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("SO_REUSEPORT: {}", e));
        }
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from(ip).to_be();
        if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32)
            != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("bind {}:{}: {}", bind, port, e));
        }
        if libc::listen(fd, 511) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("listen {}:{}: {}", bind, port, e));
        }
        Ok(fd)
    }
}

pub fn sockaddr_string(fd: RawFd, peer: bool) -> String {
    // SAFETY: getpeername/getsockname fill a sockaddr_in of the given size.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let r = if peer {
            libc::getpeername(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len)
        } else {
            libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len)
        };
        if r != 0 {
            return "?:0".into();
        }
        let ip = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
        format!("{}:{}", ip, u16::from_be(sa.sin_port))
    }
}

pub fn set_nodelay(fd: RawFd) {
    // SAFETY: setsockopt on a socket we own.
    unsafe {
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const _ as *const _,
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
}

/// Turn a new connection away with an error line, then close it.
pub fn refuse(fd: RawFd, error: &str) {
    let msg = format!("-{}\r\n", error);
    // SAFETY: best-effort write to a socket we own, then close it.
    unsafe {
        libc::send(fd, msg.as_ptr() as *const _, msg.len(), libc::MSG_DONTWAIT);
        libc::close(fd);
    }
}

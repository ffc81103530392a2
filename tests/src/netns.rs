//! Network namespaces for the live data plane tests (`tests/live.rs`).
//!
//! [`Topology::new`] builds four namespaces joined by veth pairs:
//!
//! ```text
//!  client            gw (bridge)            server
//!  c0 10.77.0.1 ⇄ ga            gb ⇄ s0 10.77.0.2
//!                   gm 10.78.0.1 ⇄ u0 10.78.0.2   update
//! ```
//!
//! `ga`/`gb` carry no address: the bridge under test forwards between
//! them. `gm` is the gateway's management link to the "update server".
//! Code runs inside a namespace on a thread that `setns`-es into it
//! ([`Netns::run`]); sockets keep the namespace they were created in.
//!
//! Namespaces are named `sgt-<tag>-<pid>-<role>`: removed on drop (also
//! when the test panics), and leftovers of dead processes with the same
//! tag are removed before building. Everything needs root (CAP_SYS_ADMIN
//! and CAP_NET_ADMIN); [`require_root`] fails the test with a message
//! otherwise.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};

/// Panics with a clear message unless running as root: these tests build
/// namespaces and must not be silently skipped.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the live data plane tests build network namespaces and need root \
         (run as root, as CI does)"
    );
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    fn create(name: String) -> anyhow::Result<Netns> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME args...`.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a new thread inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<anyhow::Result<T>> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path)?;
            Ok(f())
        })
    }

    /// Runs `f` inside this namespace and waits for it.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        match self.spawn(f).join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// A command run inside this namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into the namespace at `path`.
fn enter(path: &str) -> anyhow::Result<()> {
    let c = CString::new(path)?;
    // SAFETY: a valid C string; the descriptor is closed below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("open {path}"));
    }
    // SAFETY: fd is a namespace file; setns affects this thread only.
    let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    let err = io::Error::last_os_error();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(err).with_context(|| format!("setns {path}"));
    }
    Ok(())
}

/// ethtool ioctl commands (`<linux/ethtool.h>`).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_SSG: u32 = 0x19;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns off checksum offload, segmentation offloads and GRO on `ifname`
/// in the calling thread's namespace. On veth, a peer that offloads hands
/// over frames with unfinished checksums or 64 KiB super-frames; a real
/// NIC's wire never carries those, and an `AF_PACKET` bridge forwards what
/// it reads.
fn disable_offloads(ifname: &str) -> anyhow::Result<()> {
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("ethtool socket");
    }
    let mut result = Ok(());
    for cmd in [
        ETHTOOL_SGRO,
        ETHTOOL_SGSO,
        ETHTOOL_STSO,
        ETHTOOL_SSG,
        ETHTOOL_STXCSUM,
    ] {
        let mut value = EthtoolValue { cmd, data: 0 };
        // SAFETY: zeroed ifreq is valid; the name fits (checked) and the
        // data pointer outlives the ioctl.
        let r = unsafe {
            let mut ifr: libc::ifreq = std::mem::zeroed();
            if ifname.len() >= ifr.ifr_name.len() {
                bail!("interface name {ifname} too long");
            }
            for (d, s) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
                *d = s as libc::c_char;
            }
            ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
            libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr)
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // Not every driver knows every feature; the rest still apply.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                result = Err(e).with_context(|| format!("ethtool {cmd:#x} on {ifname}"));
            }
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

/// Addresses of the topology.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const GW_MGMT_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
pub const UPDATE_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
/// The bridge's interfaces in the gw namespace: client side, server side.
pub const BRIDGE_A: &str = "ga";
pub const BRIDGE_B: &str = "gb";

/// client ⇄ gw ⇄ server, plus gw ⇄ update.
pub struct Topology {
    pub client: Netns,
    pub gw: Netns,
    pub server: Netns,
    pub update: Netns,
}

impl Topology {
    /// Builds the namespaces for the test called `tag` (short, unique
    /// per test).
    pub fn new(tag: &str) -> anyhow::Result<Topology> {
        require_root();
        remove_leftovers(tag);
        let pid = std::process::id();
        let name = |role: &str| format!("sgt-{tag}-{pid}-{role}");
        let t = Topology {
            client: Netns::create(name("client"))?,
            gw: Netns::create(name("gw"))?,
            server: Netns::create(name("server"))?,
            update: Netns::create(name("update"))?,
        };
        let link = |a: &Netns, an: &str, b: &Netns, bn: &str| {
            ip(&[
                "link", "add", an, "netns", &a.name, "type", "veth", "peer", "name", bn, "netns",
                &b.name,
            ])
        };
        link(&t.client, "c0", &t.gw, BRIDGE_A)?;
        link(&t.server, "s0", &t.gw, BRIDGE_B)?;
        link(&t.update, "u0", &t.gw, "gm")?;
        t.client
            .exec(&["addr", "add", "10.77.0.1/24", "dev", "c0"])?;
        t.server
            .exec(&["addr", "add", "10.77.0.2/24", "dev", "s0"])?;
        t.gw.exec(&["addr", "add", "10.78.0.1/24", "dev", "gm"])?;
        t.update
            .exec(&["addr", "add", "10.78.0.2/24", "dev", "u0"])?;
        for (ns, dev) in [
            (&t.client, "c0"),
            (&t.server, "s0"),
            (&t.gw, BRIDGE_A),
            (&t.gw, BRIDGE_B),
        ] {
            let d = dev.to_string();
            ns.run(move || disable_offloads(&d))??;
        }
        for (ns, dev) in [
            (&t.client, "c0"),
            (&t.gw, BRIDGE_A),
            (&t.gw, BRIDGE_B),
            (&t.server, "s0"),
            (&t.gw, "gm"),
            (&t.update, "u0"),
        ] {
            ns.exec(&["link", "set", dev, "up"])?;
        }
        Ok(t)
    }
}

/// Deletes `sgt-<tag>-<pid>-*` namespaces whose process is gone.
fn remove_leftovers(tag: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let prefix = format!("sgt-{tag}-");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || pid == std::process::id().to_string()
        {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A TCP server thread (in whatever namespace it was started from): every
/// connection gets `respond(request bytes read until "\r\n\r\n" or EOF)`.
pub struct TcpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl TcpServer {
    /// Serves on `addr` inside `ns` until dropped.
    pub fn start(
        ns: &Netns,
        addr: SocketAddr,
        respond: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> anyhow::Result<TcpServer> {
        let listener = ns.run(move || TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (stop.clone(), received.clone());
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (respond, r) = (respond.clone(), r.clone());
                        std::thread::spawn(move || serve(conn, &*respond, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(TcpServer {
            addr,
            stop,
            received,
        })
    }

    /// Every byte any connection delivered to the server so far, in
    /// arrival order per read.
    pub fn received(&self) -> Vec<u8> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn serve(
    mut conn: std::net::TcpStream,
    respond: &(dyn Fn(&[u8]) -> Vec<u8> + Send + Sync),
    received: &Mutex<Vec<u8>>,
) {
    use std::io::{Read, Write};
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                req.extend_from_slice(&buf[..n]);
                received
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
                if req.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let _ = conn.write_all(&respond(&req));
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A UDP echo server thread on `addr` inside `ns`, until dropped.
pub struct UdpEcho {
    stop: Arc<AtomicBool>,
}

impl UdpEcho {
    pub fn start(ns: &Netns, addr: SocketAddr) -> anyhow::Result<UdpEcho> {
        let sock = ns.run(move || UdpSocket::bind(addr))??;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        Ok(UdpEcho { stop })
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

//! Real interfaces through pnet's datalink channels (`AF_PACKET` on Linux).
//!
//! Each interface gets one socket, opened here and handed to pnet, so that
//! two options pnet does not set can be set first: for the inline bridge
//! `PACKET_IGNORE_OUTGOING` (the socket does not see frames transmitted on
//! its interface — without it the bridge would read back what it forwards,
//! and the kernel's own output), and a larger receive buffer. The socket's
//! `PACKET_STATISTICS` give the frames the kernel dropped because the
//! bridge fell behind ([`super::LiveStats::kernel_drops`]).
//!
//! Frames up to 64 KiB are read whole. Interfaces must not aggregate
//! (GRO/LRO) or leave checksums to hardware on the path into the bridge:
//! the bridge forwards frames as read, like any `AF_PACKET` IPS.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};

use super::plane::{Plane, Port, Side};
use super::LiveError;

/// `<linux/if_packet.h>`, not exported by the libc crate.
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Largest frame read or written: a 64 KiB IP packet plus its Ethernet header.
const FRAME_BUFFER: usize = 65_536 + 64;
/// Socket receive buffer asked for.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;
/// How long a receive waits before checking for stop.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(50);

/// The transmit side of one interface, shared by the workers.
pub struct PnetPort {
    tx: Mutex<Box<dyn DataLinkSender>>,
}

impl Port for PnetPort {
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        tx.send_to(frame, None).unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {} bytes is larger than the buffer", frame.len()),
            ))
        })
    }
}

/// One opened interface: its transmit port, receiver and socket.
pub(super) struct Opened {
    pub port: Arc<PnetPort>,
    pub rx: Box<dyn DataLinkReceiver>,
    pub fd: libc::c_int,
    pub name: String,
}

/// Open `name` for capture (promiscuous) and transmit. `inline`: ignore
/// outgoing frames (a bridge must not read back what it sends); an IDS
/// sees both directions.
pub(super) fn open(name: &str, inline: bool) -> Result<Opened, LiveError> {
    let interfaces = pnet_datalink::interfaces();
    let Some(iface) = interfaces.iter().find(|i| i.name == name) else {
        return Err(LiveError::NoInterface {
            name: name.to_string(),
            available: interfaces.iter().map(|i| i.name.clone()).collect(),
        });
    };
    let sock_err = |what: &str, e: io::Error| LiveError::Socket {
        interface: name.to_string(),
        what: what.to_string(),
        source: e,
    };
    let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
    if fd < 0 {
        return Err(sock_err(
            "AF_PACKET socket (needs CAP_NET_RAW)",
            io::Error::last_os_error(),
        ));
    }
    let set = |level: libc::c_int, opt: libc::c_int, value: libc::c_int| {
        // SAFETY: `value` lives across the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let ignore_outgoing = if inline {
        set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            .map_err(|e| sock_err("PACKET_IGNORE_OUTGOING (Linux 4.20 or later)", e))
    } else {
        Ok(())
    };
    let prepared = ignore_outgoing.and_then(|()| {
        set(libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER).map_err(|e| sock_err("SO_RCVBUF", e))
    });
    if let Err(e) = prepared {
        // SAFETY: the socket is ours and not yet handed to pnet.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let config = pnet_datalink::Config {
        read_buffer_size: FRAME_BUFFER,
        write_buffer_size: FRAME_BUFFER,
        read_timeout: Some(RECEIVE_TIMEOUT),
        write_timeout: Some(Duration::from_secs(1)),
        promiscuous: true,
        socket_fd: Some(fd),
        ..pnet_datalink::Config::default()
    };
    // pnet owns (and on error closes) the socket from here on.
    match pnet_datalink::channel(iface, config) {
        Ok(Channel::Ethernet(tx, rx)) => Ok(Opened {
            port: Arc::new(PnetPort { tx: Mutex::new(tx) }),
            rx,
            fd,
            name: name.to_string(),
        }),
        Ok(_) => Err(LiveError::Setup(format!(
            "interface {name}: pnet returned a non-Ethernet channel"
        ))),
        Err(e) => Err(sock_err("bind", e)),
    }
}

/// Frames the kernel dropped on `fd` since the last call.
fn kernel_drops(fd: libc::c_int) -> u64 {
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: `stats` matches struct tpacket_stats {tp_packets, tp_drops}.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        0
    } else {
        u64::from(stats[1])
    }
}

/// Reads `opened` until the plane stops, feeding every frame to ingress
/// as arriving on `side`.
pub(super) fn spawn_receiver(
    plane: Arc<Plane>,
    mut opened: Opened,
    side: Side,
) -> Result<JoinHandle<()>, LiveError> {
    std::thread::Builder::new()
        .name(format!("sandgate-rx-{}", opened.name))
        .spawn(move || {
            let mut last_stats = Instant::now();
            kernel_drops(opened.fd);
            while !plane.stop.load(Ordering::Relaxed) {
                match opened.rx.next() {
                    Ok(frame) => plane.ingress(side, frame),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        plane.counters_receive_error();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                if last_stats.elapsed() > Duration::from_millis(250) {
                    last_stats = Instant::now();
                    plane.counters_kernel_drops(kernel_drops(opened.fd));
                }
            }
            plane.counters_kernel_drops(kernel_drops(opened.fd));
        })
        .map_err(LiveError::Thread)
}

use std::net::IpAddr;
use std::time::Duration;

/// How the media plane listens and how patient it is with peers.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address advertised in ICE candidates (the public one behind 1:1 NAT); defaults to
    /// `bind_ip`.
    pub public_ip: Option<IpAddr>,
    /// First UDP port; shard `i` uses `port + i`. 0 picks free ports.
    pub port: u16,
    /// Number of shards (UDP sockets, one loop each). Rooms are pinned to a shard.
    pub shards: usize,
    /// ICE-TCP (RFC 6544): the TCP port of the passive candidate offered after the UDP one,
    /// shared by every shard, for clients whose network drops UDP. `Some(0)` picks a free
    /// port; `None` offers no TCP candidate.
    pub tcp_port: Option<u16>,
    /// What one ICE-TCP client may hold (frame size, timeouts, connections per address).
    pub tcp_limits: crate::TcpLimits,
    /// A peer whose ICE does not connect within this time is removed.
    pub connect_timeout: Duration,
    /// Nothing authenticated from a client for this long marks its peer disconnected...
    pub ice_disconnected_timeout: Duration,
    /// ...and staying disconnected this long removes it (its place, subscriptions and SSRCs
    /// are kept until then, so a blip or an ICE restart resumes the call).
    pub disconnect_grace: Duration,
    /// Large rooms send each listener a fixed number of audio slots; `None` keeps every room
    /// small (one stream per speaker, everyone forwarded always).
    pub audio_slots: Option<AudioSlots>,
}

/// A room that has had more than `above` participants is *large* until it empties: each
/// listener receives `slots` audio streams, negotiated once at join, and the loudest current
/// speakers ([`crate::audible`]) are switched onto them, each packet naming its speaker in
/// the RTP CSRC list. Joins and leaves then send no offer to anyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSlots {
    pub slots: usize,
    pub above: usize,
}

impl Default for AudioSlots {
    /// Three voices at once is already more than people follow; twelve is a large meeting.
    fn default() -> Self {
        Self {
            slots: 3,
            above: 12,
        }
    }
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            port: 0,
            shards: std::thread::available_parallelism().map_or(1, usize::from),
            tcp_port: Some(0),
            tcp_limits: crate::TcpLimits::default(),
            connect_timeout: Duration::from_secs(20),
            ice_disconnected_timeout: Duration::from_secs(5),
            disconnect_grace: Duration::from_secs(20),
            audio_slots: Some(AudioSlots::default()),
        }
    }
}

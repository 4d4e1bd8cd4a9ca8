//! Which session receives the datagrams arriving from which peer address.
//!
//! A worker's RTP and RTCP sockets are shared by all its RTSP sessions, so what arrives is
//! routed by source address to the session whose SETUP announced it. A route, once claimed,
//! belongs to its session until that session releases it: a second session from the same
//! address announcing the same `client_port` (a NAT, or a client trying) is refused rather
//! than silently taking over the first one's media, and repeated SETUPs cannot add routes
//! without bound.

use alloc::collections::BTreeMap;
use core::net::{IpAddr, SocketAddr};

use arrayvec::ArrayVec;

/// The most peer addresses one session may receive from: RTP and RTCP for up to 4 tracks.
pub const MAX_ROUTES_PER_SESSION: usize = 8;

/// Why a session may not receive from the addresses it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Datagrams from this port of the peer's address already go to another session.
    #[error("UDP port {port} of this address is already routed to another session")]
    InUse {
        /// The peer's port.
        port: u16,
    },
    /// The session would receive from more addresses than allowed.
    #[error("too many UDP routes for one session (limit {max})")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The RTP and RTCP ports announced are the same port.
    #[error("RTP and RTCP client ports are the same")]
    SamePort,
}

/// The routes of one worker's UDP sockets: peer address to session `S`.
///
/// Invariants: each address leads to at most one session, and no session holds more than
/// [`MAX_ROUTES_PER_SESSION`] addresses. Addresses are kept in canonical form, so an
/// IPv4-mapped IPv6 peer (as a dual-stack socket reports it) matches its IPv4 address.
#[derive(Debug, Clone)]
pub struct RouteTable<S> {
    routes: BTreeMap<SocketAddr, S>,
    /// Each session's addresses, to release them all at once.
    sessions: BTreeMap<S, ArrayVec<SocketAddr, MAX_ROUTES_PER_SESSION>>,
}

impl<S: Copy + Ord> RouteTable<S> {
    /// No routes.
    pub fn new() -> Self {
        Self {
            routes: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }

    /// Routes datagrams from `ip` at both `ports` (RTP, RTCP) to `session`.
    ///
    /// Refused, with nothing changed, if either address already leads to another session,
    /// if the session would hold more than [`MAX_ROUTES_PER_SESSION`] routes, or if both
    /// ports are the same. Claiming an address the session already holds changes nothing.
    pub fn claim(&mut self, session: S, ip: IpAddr, ports: [u16; 2]) -> Result<(), RouteError> {
        let [rtp, rtcp] = ports;
        if rtp == rtcp {
            return Err(RouteError::SamePort);
        }
        let ip = ip.to_canonical();
        let addresses = [SocketAddr::new(ip, rtp), SocketAddr::new(ip, rtcp)];
        for address in &addresses {
            if self
                .routes
                .get(address)
                .is_some_and(|owner| *owner != session)
            {
                return Err(RouteError::InUse {
                    port: address.port(),
                });
            }
        }
        let held = self.sessions.get(&session);
        let held_count = held.map_or(0, ArrayVec::len);
        let new = addresses
            .iter()
            .filter(|address| !held.is_some_and(|held| held.contains(address)))
            .count();
        if held_count + new > MAX_ROUTES_PER_SESSION {
            return Err(RouteError::TooMany {
                max: MAX_ROUTES_PER_SESSION,
            });
        }
        let held = self.sessions.entry(session).or_default();
        for address in addresses {
            if !held.contains(&address) && held.try_push(address).is_ok() {
                self.routes.insert(address, session);
            }
        }
        Ok(())
    }

    /// The session that receives datagrams from `from`, if any.
    pub fn lookup(&self, from: SocketAddr) -> Option<S> {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        self.routes.get(&from).copied()
    }

    /// Drops every route of `session` (it closed, or tore its media down).
    pub fn release(&mut self, session: S) {
        let Some(held) = self.sessions.remove(&session) else {
            return;
        };
        for address in held {
            if self.routes.get(&address) == Some(&session) {
                self.routes.remove(&address);
            }
        }
    }

    /// How many addresses are routed.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True if no address is routed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// How many addresses are routed to `session`.
    pub fn routes_of(&self, session: S) -> usize {
        self.sessions.get(&session).map_or(0, ArrayVec::len)
    }
}

impl<S: Copy + Ord> Default for RouteTable<S> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
    }

    #[test]
    fn a_second_session_cannot_take_over_a_route() {
        let mut table = RouteTable::new();
        assert_eq!(table.claim(1u32, ip(1), [5000, 5001]), Ok(()));
        assert_eq!(
            table.claim(2, ip(1), [5002, 5001]),
            Err(RouteError::InUse { port: 5001 })
        );
        assert_eq!(table.routes_of(2), 0, "a refused claim changes nothing");
        assert_eq!(table.lookup(SocketAddr::new(ip(1), 5001)), Some(1));
        assert_eq!(table.lookup(SocketAddr::new(ip(1), 5002)), None);
        // Another address may use the same ports.
        assert_eq!(table.claim(2, ip(2), [5000, 5001]), Ok(()));
        assert_eq!(table.len(), 4);
        table.release(1);
        assert_eq!(table.lookup(SocketAddr::new(ip(1), 5000)), None);
        assert_eq!(table.claim(2, ip(1), [5000, 5001]), Ok(()));
        assert_eq!(table.routes_of(2), 4);
    }

    #[test]
    fn reclaiming_is_a_no_op_and_routes_per_session_are_capped() {
        let mut table = RouteTable::new();
        for track in 0..4u16 {
            let port = 6000 + 2 * track;
            assert_eq!(table.claim(7u8, ip(1), [port, port + 1]), Ok(()));
            assert_eq!(table.claim(7, ip(1), [port, port + 1]), Ok(()));
        }
        assert_eq!(table.routes_of(7), MAX_ROUTES_PER_SESSION);
        assert_eq!(
            table.claim(7, ip(1), [6100, 6101]),
            Err(RouteError::TooMany { max: 8 })
        );
        // Half new is still too many.
        assert_eq!(
            table.claim(7, ip(1), [6000, 6101]),
            Err(RouteError::TooMany { max: 8 })
        );
        assert_eq!(table.claim(7, ip(1), [6001, 6000]), Ok(()));
        assert_eq!(table.claim(7, ip(1), [9, 9]), Err(RouteError::SamePort));
        assert_eq!(table.len(), 8);
    }

    #[test]
    fn mapped_addresses_match_ipv4() {
        let mut table = RouteTable::new();
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped());
        assert_eq!(table.claim(1u8, mapped, [4000, 4001]), Ok(()));
        assert_eq!(table.lookup(SocketAddr::new(ip(1), 4000)), Some(1));
        assert_eq!(
            table.claim(2, ip(1), [4001, 4003]),
            Err(RouteError::InUse { port: 4001 })
        );
        assert_eq!(
            table.lookup(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 4000)),
            None
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim {
            session: u8,
            ip: u8,
            ports: [u16; 2],
        },
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u8..4, 0u8..2, [0u16..12, 0u16..12])
                .prop_map(|(session, ip, ports)| Op::Claim { session, ip, ports }),
            1 => (0u8..5).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a plain map from (address, port) to session: claims succeed or fail as
        /// the rules say, release removes exactly the session's routes, lookups agree, and
        /// the invariants hold after every step.
        #[test]
        fn route_table_matches_model(ops in proptest::collection::vec(op(), 0..150)) {
            let mut table = RouteTable::new();
            let mut model: BTreeMap<(u8, u16), u8> = BTreeMap::new();
            let count = |model: &BTreeMap<(u8, u16), u8>, session: u8| {
                model.values().filter(|s| **s == session).count()
            };
            for op in ops {
                match op {
                    Op::Claim { session, ip: i, ports } => {
                        let result = table.claim(session, ip(i), ports);
                        let taken = ports.iter().find(|port| {
                            model.get(&(i, **port)).is_some_and(|owner| *owner != session)
                        });
                        let new = ports.iter().filter(|port| !model.contains_key(&(i, **port))).count();
                        if ports[0] == ports[1] {
                            prop_assert_eq!(result, Err(RouteError::SamePort));
                        } else if let Some(port) = taken {
                            prop_assert_eq!(result, Err(RouteError::InUse { port: *port }));
                        } else if count(&model, session) + new > MAX_ROUTES_PER_SESSION {
                            prop_assert_eq!(result, Err(RouteError::TooMany { max: MAX_ROUTES_PER_SESSION }));
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            for port in ports {
                                model.insert((i, port), session);
                            }
                        }
                    }
                    Op::Release(session) => {
                        table.release(session);
                        model.retain(|_, owner| *owner != session);
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.is_empty(), model.is_empty());
                for session in 0..5u8 {
                    prop_assert_eq!(table.routes_of(session), count(&model, session));
                    prop_assert!(table.routes_of(session) <= MAX_ROUTES_PER_SESSION);
                }
                for i in 0..2u8 {
                    for port in 0..12u16 {
                        prop_assert_eq!(
                            table.lookup(SocketAddr::new(ip(i), port)),
                            model.get(&(i, port)).copied()
                        );
                    }
                }
                // The per-session index and the address map describe the same routes.
                let indexed: usize = table.sessions.values().map(ArrayVec::len).sum();
                prop_assert_eq!(indexed, table.routes.len());
                for (session, held) in &table.sessions {
                    prop_assert!(!held.is_empty());
                    for address in held {
                        prop_assert_eq!(table.routes.get(address), Some(session));
                    }
                }
            }
        }
    }
}

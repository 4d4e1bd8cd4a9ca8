//! Server-wide connection counting: how many connections are open, in total and from each
//! address, so that a handful of clients cannot take every descriptor.
//!
//! The engine keeps one [`Admission`] behind a mutex and touches it once per accept
//! ([`Admission::admit`]) and once per close ([`Admission::release`]), never per read or
//! frame.

use alloc::collections::BTreeMap;
use core::net::IpAddr;

/// Connection limits, see [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// The most connections open at once.
    pub max_connections: usize,
    /// The most connections open at once from one address; 0 means no per-address limit.
    pub max_connections_per_ip: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        // Well under a typical descriptor limit of 65,536; the per-address limit still lets
        // a load tester or a NAT with many players in, while one address cannot take all.
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The server holds as many connections as it may.
    #[error("too many connections (limit {max})")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// The address holds as many connections as one address may.
    #[error("too many connections from {ip} (limit {max})")]
    TooManyFromAddress {
        /// The address, as counted (an IPv4-mapped IPv6 address as its IPv4 address).
        ip: IpAddr,
        /// The limit.
        max: usize,
    },
}

/// The open connections, in total and per address.
///
/// An address's count is removed when it drops to zero, so the memory held is bounded by
/// `max_connections` entries however many addresses come and go. An IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`, as a dual-stack listener reports an IPv4 peer) counts as the
/// IPv4 address, so one client cannot double its share by connecting both ways.
#[derive(Debug, Clone)]
pub struct Admission {
    config: AdmissionConfig,
    per_ip: BTreeMap<IpAddr, usize>,
    total: usize,
}

impl Admission {
    /// No connections yet.
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            per_ip: BTreeMap::new(),
            total: 0,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Counts a new connection from `ip`, or says why it must be refused (then nothing is
    /// counted). The server-wide limit is checked first.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), AdmissionError> {
        let ip = ip.to_canonical();
        if self.total >= self.config.max_connections {
            return Err(AdmissionError::TooManyConnections {
                max: self.config.max_connections,
            });
        }
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let per_ip = self.config.max_connections_per_ip;
        if per_ip != 0 && from_ip >= per_ip {
            return Err(AdmissionError::TooManyFromAddress { ip, max: per_ip });
        }
        self.per_ip.insert(ip, from_ip + 1);
        self.total += 1;
        Ok(())
    }

    /// Uncounts a connection from `ip` that closed. An address with no counted connection is
    /// ignored, so a double release cannot push the counts below what is open.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let Some(count) = self.per_ip.get_mut(&ip) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.per_ip.remove(&ip);
        }
        self.total = self.total.saturating_sub(1);
    }

    /// Connections open.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Connections open from `ip`.
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn limits_in_total_and_per_address() {
        let mut admission = Admission::new(AdmissionConfig {
            max_connections: 3,
            max_connections_per_ip: 2,
        });
        assert_eq!(admission.admit(v4(1)), Ok(()));
        assert_eq!(admission.admit(v4(1)), Ok(()));
        let refused = admission.admit(v4(1));
        assert_eq!(
            refused,
            Err(AdmissionError::TooManyFromAddress { ip: v4(1), max: 2 })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "too many connections from 192.0.2.1 (limit 2)"
        );
        assert_eq!(admission.admit(v4(2)), Ok(()));
        assert_eq!(
            admission.admit(v4(3)),
            Err(AdmissionError::TooManyConnections { max: 3 })
        );
        admission.release(v4(1));
        assert_eq!(admission.admit(v4(3)), Ok(()));
        assert_eq!(admission.total(), 3);
        assert_eq!(admission.from_ip(v4(1)), 1);
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        let mut admission = Admission::new(AdmissionConfig {
            max_connections: 10,
            max_connections_per_ip: 1,
        });
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(admission.admit(v4(1)), Ok(()));
        assert_eq!(
            admission.admit(mapped),
            Err(AdmissionError::TooManyFromAddress { ip: v4(1), max: 1 })
        );
        assert_eq!(admission.from_ip(mapped), 1);
        admission.release(mapped);
        assert_eq!(admission.total(), 0);
        // A real IPv6 address is its own.
        assert_eq!(admission.admit(IpAddr::V6(Ipv6Addr::LOCALHOST)), Ok(()));
        assert_eq!(admission.admit(v4(1)), Ok(()));
    }

    #[test]
    fn zero_per_address_means_no_per_address_limit_and_unknown_release_is_ignored() {
        let mut admission = Admission::new(AdmissionConfig {
            max_connections: 5,
            max_connections_per_ip: 0,
        });
        for _ in 0..5 {
            assert_eq!(admission.admit(v4(1)), Ok(()));
        }
        assert_eq!(
            admission.admit(v4(1)),
            Err(AdmissionError::TooManyConnections { max: 5 })
        );
        admission.release(v4(9));
        assert_eq!(admission.total(), 5);
        for _ in 0..7 {
            admission.release(v4(1));
        }
        assert_eq!(admission.total(), 0);
        assert!(admission.per_ip.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit(u8, bool),
        Release(u8, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..4, any::<bool>()).prop_map(|(ip, mapped)| Op::Admit(ip, mapped)),
            2 => (0u8..5, any::<bool>()).prop_map(|(ip, mapped)| Op::Release(ip, mapped)),
        ]
    }

    /// Address `i`, plain or IPv4-mapped; address 3 is an IPv6 one, the same either way.
    fn address(i: u8, mapped: bool) -> IpAddr {
        match (i, mapped) {
            (3, _) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            (_, false) => v4(i),
            (_, true) => IpAddr::V6(Ipv4Addr::new(192, 0, 2, i).to_ipv6_mapped()),
        }
    }

    proptest! {
        /// Against a list of open connections: every refusal names the limit that was
        /// reached, the counts match, and an address with no connection holds no entry.
        #[test]
        fn admission_matches_model(
            ops in proptest::collection::vec(op(), 0..200),
            max in 0usize..8,
            per_ip in 0usize..4,
        ) {
            let mut admission = Admission::new(AdmissionConfig {
                max_connections: max,
                max_connections_per_ip: per_ip,
            });
            let mut open: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit(i, mapped) => {
                        let from = open.iter().filter(|o| **o == i).count();
                        let result = admission.admit(address(i, mapped));
                        if open.len() >= max {
                            prop_assert_eq!(result, Err(AdmissionError::TooManyConnections { max }));
                        } else if per_ip != 0 && from >= per_ip {
                            prop_assert_eq!(
                                result,
                                Err(AdmissionError::TooManyFromAddress { ip: address(i, false), max: per_ip })
                            );
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            open.push(i);
                        }
                    }
                    Op::Release(i, mapped) => {
                        admission.release(address(i, mapped));
                        if let Some(at) = open.iter().position(|o| *o == i) {
                            open.swap_remove(at);
                        }
                    }
                }
                prop_assert_eq!(admission.total(), open.len());
                for i in 0..5u8 {
                    let count = open.iter().filter(|o| **o == i).count();
                    prop_assert_eq!(admission.from_ip(address(i, false)), count);
                    prop_assert_eq!(admission.from_ip(address(i, true)), count);
                }
                prop_assert!(admission.per_ip.len() <= open.len());
                prop_assert!(admission.per_ip.values().all(|count| *count > 0));
            }
        }
    }
}

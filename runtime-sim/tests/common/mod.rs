//! Helpers the simulation tests share.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use mediakit_sim::clients::{Client, ClientLog, Event};

/// The `n`th client address: 10.0.x.y, distinct for every `n` below 65,000.
pub fn client_ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// True once `client` logged an event matching `wanted`.
pub fn saw(client: &Client, wanted: impl Fn(&Event) -> bool) -> bool {
    client.log().first(wanted).is_some()
}

/// True once the client's stream ended or its connection closed.
pub fn done(client: &Client) -> bool {
    saw(client, |event| {
        matches!(event, Event::Ended | Event::Closed(_))
    })
}

/// Every client's log, in order, for comparing runs.
pub fn logs(clients: &[Client]) -> Vec<ClientLog> {
    clients.iter().map(|client| client.log().clone()).collect()
}

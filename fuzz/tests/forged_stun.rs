//! Forged STUN binding requests on the media port: the ufrag in a request's USERNAME travels in clear text, so
//! anyone who saw a check can put it in a request of their own. Such a request reaches the connection it names
//! (whose ICE agent refuses it for its MESSAGE-INTEGRITY), but it may not make the core route anything else
//! from its source address to that connection (`chorus_sfu::router`).

use chorus_fuzz::media::forged_binding_request;
use chorus_fuzz::MediaCore;

/// Before the router bound addresses only on answered requests, one forged request from the publisher's address,
/// naming the subscriber's connection, moved the publisher's address to that connection: its media went to the
/// wrong str0m connection and reached no one until its next consent check.
#[test]
fn a_forged_request_cannot_move_the_publishers_address_to_another_connection() {
    let mut core = MediaCore::new();
    assert!(core.still_forwards());
    let subscriber_ufrag = core.server_ufrags()[1].to_string();
    core.inject(
        true,
        &forged_binding_request(&format!("{subscriber_ufrag}:cliufrag")),
    );
    assert!(
        core.still_forwards(),
        "a forged binding request stopped the publisher's media: {}",
        core.counters()
    );
}

/// A stranger's forged request naming a real connection does not make the stranger's other datagrams that
/// connection's.
#[test]
fn a_forged_request_does_not_bind_a_strangers_address() {
    let mut core = MediaCore::new();
    let publisher_ufrag = core.server_ufrags()[0].to_string();
    let media = core.seeds()[10].clone();
    core.inject(
        false,
        &forged_binding_request(&format!("{publisher_ufrag}:cliufrag")),
    );
    let unrouted = core.unrouted();
    core.inject(false, &media);
    assert_eq!(
        core.unrouted(),
        unrouted + 1,
        "the stranger's media was routed to a connection: {}",
        core.counters()
    );
    assert!(core.still_forwards());
}

//! Two nodes on one bus: when one dies without a goodbye (SIGKILL, a crashed box), the
//! other clears its participants after the heartbeat expiry, and tells its sockets.

use std::sync::Arc;
use std::time::Duration;

use signaling::bus::LocalBus;
use signaling::hub::{participant_info, Hub, HubConfig};
use signaling::media::NoMedia;
use signaling::protocol::{LeaveReason, Role, ServerMessage};

fn node(tag: u32, bus: &Arc<LocalBus>) -> Arc<Hub> {
    let hub = Hub::new(tag, HubConfig::default(), bus.clone(), Arc::new(NoMedia));
    hub.start();
    hub
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_has_its_participants_cleared_after_the_expiry() {
    let bus = Arc::new(LocalBus::new());
    let a = node(1, &bus);
    let b = node(2, &bus);
    let mut seen_on_a = a.watch_room(7);
    let alice = participant_info(a.next_participant_id(), 1, "alice", Role::Member);
    let bob = participant_info(b.next_participant_id(), 2, "bob", Role::Member);
    let _alice_rx = a.join(7, alice.clone()).await;
    let _bob_rx = b.join(7, bob.clone()).await;
    settle().await;
    assert_eq!(
        a.participants(7).len(),
        2,
        "a sees bob, who joined through b"
    );

    // A minute of both nodes alive: nobody is cleared.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(a.participants(7).len(), 2);

    // b stops without anyone leaving (its dispatcher and heartbeat end, as in a SIGKILL).
    b.shutdown();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(a.participants(7).len(), 2, "within the expiry bob stays");
    // Expiry (15 s) plus at most one heartbeat period (5 s) for the check to run.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let left = a.participants(7);
    assert_eq!(left.len(), 1, "bob is cleared: {left:?}");
    assert_eq!(left[0].participant_id, alice.participant_id);

    // a's sockets were told, as for a participant who timed out.
    let mut told = false;
    while let Ok(out) = seen_on_a.try_recv() {
        if let ServerMessage::ParticipantLeft {
            participant_id,
            reason,
            ..
        } = &out.message
        {
            if *participant_id == bob.participant_id {
                assert_eq!(*reason, LeaveReason::Timeout);
                told = true;
            }
        }
    }
    assert!(told, "participant_left for bob reached a's sockets");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_restarts_under_its_tag_has_its_old_participants_cleared_at_once() {
    let bus = Arc::new(LocalBus::new());
    let a = node(1, &bus);
    let b = node(2, &bus);
    let bob = participant_info(b.next_participant_id(), 2, "bob", Role::Member);
    let _bob_rx = b.join(7, bob.clone()).await;
    settle().await;
    assert_eq!(a.participants(7).len(), 1);
    b.shutdown();
    // The same node comes back within a second (a quick restart), under the same tag.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _b_again = node(2, &bus);
    settle().await;
    assert!(a.participants(7).is_empty(), "bob's old presence is gone");
}

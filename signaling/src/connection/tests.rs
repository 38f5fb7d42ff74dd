//! The loops driven through channels, on a paused clock where timers matter.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::bus::{BoxFuture, LocalBus};
use crate::hub::Hub;
use crate::hub::HubConfig;
use crate::media::NoMedia;
use crate::protocol::{ChatMessage, Role};
use crate::service::{RoomOp, RoomService, ServiceError};

/// Lets everyone do everything; stores nothing.
struct OpenDoor;

impl RoomService for OpenDoor {
    fn authorize(
        &self,
        _: RoomId,
        _: UserId,
        _: RoomOp,
    ) -> BoxFuture<'_, Result<Role, ServiceError>> {
        Box::pin(async { Ok(Role::Member) })
    }
    fn post_chat(
        &self,
        room_id: RoomId,
        user_id: UserId,
        username: String,
        text: String,
    ) -> BoxFuture<'_, Result<ChatMessage, ServiceError>> {
        Box::pin(async move {
            Ok(ChatMessage {
                id: 1,
                room_id,
                user_id,
                username,
                text,
                created_at: String::new(),
            })
        })
    }
    fn chat_after(
        &self,
        _: RoomId,
        _: UserId,
        _: i64,
        _: Option<u32>,
    ) -> BoxFuture<'_, Result<(Vec<ChatMessage>, bool), ServiceError>> {
        Box::pin(async { Ok((Vec::new(), false)) })
    }
    fn remove_member(
        &self,
        _: RoomId,
        _: UserId,
        _: UserId,
    ) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async { Ok(()) })
    }
}

type TestSink = Pin<Box<dyn Sink<Frame, Error = &'static str> + Send>>;
type TestStream = Pin<Box<dyn Stream<Item = Result<Frame, &'static str>> + Send>>;

/// A room connection driven through channels: (to server, from server, the task).
fn connect(
    hub: &Arc<Hub>,
) -> (
    mpsc::UnboundedSender<Frame>,
    mpsc::UnboundedReceiver<Frame>,
    tokio::task::JoinHandle<()>,
) {
    let (to_server, server_in) = mpsc::unbounded_channel::<Frame>();
    let (server_out, from_server) = mpsc::unbounded_channel::<Frame>();
    let sink: TestSink = Box::pin(futures_util::sink::unfold(
        server_out,
        |tx, frame: Frame| async move {
            tx.send(frame).map_err(|_| "client gone")?;
            Ok::<_, &'static str>(tx)
        },
    ));
    let stream: TestStream = Box::pin(futures_util::stream::unfold(
        server_in,
        |mut rx| async move { rx.recv().await.map(|frame| (Ok(frame), rx)) },
    ));
    let session = RoomSession {
        room_id: 7,
        user_id: 1,
        username: "alice".to_owned(),
    };
    let task = tokio::spawn(run_room(
        Arc::clone(hub),
        Arc::new(OpenDoor),
        session,
        tokio_util::sync::CancellationToken::new(),
        sink,
        stream,
    ));
    (to_server, from_server, task)
}

fn hub(idle: Duration) -> Arc<Hub> {
    let hub = Hub::new(
        1,
        HubConfig::with_idle_timeout(idle),
        Arc::new(LocalBus::new()),
        Arc::new(NoMedia),
    );
    hub.start();
    hub
}

async fn next_json(rx: &mut mpsc::UnboundedReceiver<Frame>) -> serde_json::Value {
    loop {
        match rx.recv().await.expect("server still talking") {
            Frame::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Frame::Ping(_) | Frame::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn chat_before_join_is_refused_and_the_socket_stays_usable() {
    let hub = hub(Duration::from_secs(30));
    let (tx, mut rx, _task) = connect(&hub);
    tx.send(Frame::Text(
        r#"{"type":"chat","request_id":"a","text":"hi"}"#.into(),
    ))
    .expect("send");
    let err = next_json(&mut rx).await;
    assert_eq!(
        (err["code"].as_str(), err["request_id"].as_str()),
        (Some("not_joined"), Some("a"))
    );
    tx.send(Frame::Text(r#"{"type":"join"}"#.into()))
        .expect("send");
    let joined = next_json(&mut rx).await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(hub.participants(7).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_pinged_then_dropped_after_the_idle_timeout() {
    let hub = hub(Duration::from_secs(3));
    let (tx, mut rx, task) = connect(&hub);
    tx.send(Frame::Text(r#"{"type":"join"}"#.into()))
        .expect("send");
    assert_eq!(next_json(&mut rx).await["type"], "joined");
    let started = Instant::now();
    let mut pings = 0;
    let close = loop {
        match rx.recv().await.expect("a close frame comes") {
            Frame::Ping(_) => pings += 1,
            Frame::Close(close) => break close,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.map(|c| c.code), Some(close_codes::IDLE_TIMEOUT));
    assert!(pings >= 1);
    assert!(
        started.elapsed() >= Duration::from_secs(3) && started.elapsed() < Duration::from_secs(5)
    );
    task.await.expect("loop ends");
    assert!(hub.participants(7).is_empty(), "the participant left");
    drop(tx);
}

/// A client whose socket holds at most `capacity` unread frames: a full one blocks the
/// server's send, as a TCP socket nobody reads does.
fn connect_slow(
    hub: &Arc<Hub>,
    user_id: UserId,
    capacity: usize,
) -> (
    mpsc::UnboundedSender<Frame>,
    mpsc::Receiver<Frame>,
    tokio::task::JoinHandle<()>,
) {
    let (to_server, server_in) = mpsc::unbounded_channel::<Frame>();
    let (server_out, from_server) = mpsc::channel::<Frame>(capacity);
    let sink: TestSink = Box::pin(futures_util::sink::unfold(
        server_out,
        |tx, frame: Frame| async move {
            tx.send(frame).await.map_err(|_| "client gone")?;
            Ok::<_, &'static str>(tx)
        },
    ));
    let stream: TestStream = Box::pin(futures_util::stream::unfold(
        server_in,
        |mut rx| async move { rx.recv().await.map(|frame| (Ok(frame), rx)) },
    ));
    let session = RoomSession {
        room_id: 7,
        user_id,
        username: format!("user{user_id}"),
    };
    let task = tokio::spawn(run_room(
        Arc::clone(hub),
        Arc::new(OpenDoor),
        session,
        tokio_util::sync::CancellationToken::new(),
        sink,
        stream,
    ));
    (to_server, from_server, task)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout_and_others_stay() {
    // The idle timeout alone would keep it 60 s; the send timeout is what ends it.
    let hub = hub(Duration::from_secs(60));
    let send_timeout = hub.config().send_timeout;
    let (alice_tx, mut alice_rx, _alice) = connect(&hub);
    alice_tx
        .send(Frame::Text(r#"{"type":"join"}"#.into()))
        .expect("send");
    assert_eq!(next_json(&mut alice_rx).await["type"], "joined");

    let (slow_tx, _slow_rx_never_read, slow_task) = connect_slow(&hub, 2, 2);
    slow_tx
        .send(Frame::Text(r#"{"type":"join"}"#.into()))
        .expect("send");
    assert_eq!(next_json(&mut alice_rx).await["type"], "participant_joined");
    let started = Instant::now();
    // The slow client asks and asks (pings are cheap to send, costly to leave unread).
    for i in 0..50 {
        let _ = slow_tx.send(Frame::Text(format!(
            r#"{{"type":"ping","request_id":"{i}"}}"#
        )));
    }
    tokio::time::timeout(send_timeout + Duration::from_secs(3), slow_task)
        .await
        .expect("the stalled socket ends within the send timeout")
        .expect("loop ends");
    assert!(started.elapsed() >= send_timeout);
    let left = next_json(&mut alice_rx).await;
    assert_eq!(
        (left["type"].as_str(), left["reason"].as_str()),
        (Some("participant_left"), Some("timeout"))
    );
    // Alice is untouched: still in the call and answered.
    alice_tx
        .send(Frame::Text(r#"{"type":"ping","request_id":"a"}"#.into()))
        .expect("send");
    assert_eq!(next_json(&mut alice_rx).await["type"], "pong");
    assert_eq!(hub.participants(7).len(), 1);
}

#[tokio::test]
async fn a_flood_of_one_message_type_is_refused_with_rate_limited() {
    let hub = hub(Duration::from_secs(30));
    let (tx, mut rx, _task) = connect(&hub);
    for i in 0..8 {
        tx.send(Frame::Text(format!(
            r#"{{"type":"sync","request_id":"{i}","after":0}}"#
        )))
        .expect("send");
    }
    let mut codes = Vec::new();
    for _ in 0..8 {
        let reply = next_json(&mut rx).await;
        codes.push(
            reply["code"]
                .as_str()
                .unwrap_or(reply["type"].as_str().unwrap_or(""))
                .to_owned(),
        );
    }
    assert_eq!(
        codes.iter().filter(|c| *c == "history").count(),
        5,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "rate_limited").count(),
        3,
        "{codes:?}"
    );
    // Other message types still pass.
    tx.send(Frame::Text(r#"{"type":"join"}"#.into()))
        .expect("send");
    assert_eq!(next_json(&mut rx).await["type"], "joined");
}

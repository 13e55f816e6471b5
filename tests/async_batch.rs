//! Async batches through the Rust API against the real broker: `send_batch` (awaited) and
//! `send_batch_with_callback` give each message its ids, and a broken batch rule is an error
//! before anything is sent (the callback never runs).
mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{namesrv, unique};
use rmq::{Config, Message, Producer};

fn producer() -> Producer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", &unique("AsyncBatchGroup")).unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn send_batch_with_callback_gives_each_message_its_ids() {
    let p = producer();
    let topic = unique("AsyncBatch");
    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new(&topic, format!("rust async batch {i}")))
        .collect();
    let (tx, rx) = mpsc::channel();
    p.send_batch_with_callback(&batch, move |r| tx.send(r).unwrap())
        .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(15)).unwrap().unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "one callback"
    );
    let offsets: Vec<&str> = r.offset_msg_ids().collect();
    assert_eq!((r.msg_ids().count(), offsets.len()), (3, 3));
    for (m, id) in batch.iter().zip(&offsets) {
        assert_eq!(
            p.view_message_blocking(id).unwrap().message.body(),
            m.body()
        );
    }

    // awaited, on a runtime of the caller's
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(p.send_batch(&batch)).unwrap();
    assert_eq!(r.msg_ids().count(), 3);

    let mixed = [
        Message::new(&topic, "a"),
        Message::new(unique("Other"), "b"),
    ];
    let e = p
        .send_batch_with_callback(&mixed, |_| panic!("callback of a refused batch"))
        .unwrap_err();
    assert!(e.to_string().contains("one topic"), "{e}");
    p.close().unwrap();
}

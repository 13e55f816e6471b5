//! Request-reply helpers: producers in client instances of their own, and an rmq responder.
use std::time::Duration;

use super::{namesrv, unique};
use rmq::{Config, ConsumeResult, Error, Message, Producer, PushConsumer};

/// Long enough for a responder that is still starting (rebalance, first pull) to answer.
pub const PATIENT: Duration = Duration::from_secs(30);

/// A started producer in a client instance of its own, so that the instance's pending
/// requests are this producer's alone.
pub fn producer() -> Producer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", &unique("RrGroup")).unwrap();
    c.set("instance-name", &unique("rr")).unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// A push consumer of `topic` that answers every request with "re: <body>", through a producer
/// of its own; messages that are not requests are consumed without an answer.
pub fn responder(topic: &str) -> (PushConsumer, Producer) {
    let replier = producer();
    // the topic exists before the consumer looks its route up
    replier
        .send_blocking(&Message::new(topic, "not a request"))
        .unwrap();
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", &unique("RrResponder")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    let r = replier.clone();
    consumer
        .set_listener(move |msgs| {
            for m in msgs {
                let mut answer = b"re: ".to_vec();
                answer.extend_from_slice(m.message.body());
                match r.reply_blocking(&m.message, answer) {
                    Ok(_) => {}
                    Err(Error::InvalidArgument(_)) => {} // not a request
                    Err(_) => return ConsumeResult::ReconsumeLater { delay_level: 1 },
                }
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    (consumer, replier)
}

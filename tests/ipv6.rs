//! IPv6 against a real cluster on ::1 (name server [::1]:PORT, brokers registered as ::1:PORT):
//! routes, sends, the 56-character store ids of IPv6 store hosts, and stored messages whose born
//! and store hosts are IPv6 (sysFlag 0x10 / 0x20).
mod common;

use std::net::{IpAddr, Ipv6Addr};

use common::{multi_broker_cluster, unique};
use rmq::protocol::message::decode_offset_msg_id;
use rmq::{Message, Producer, ProducerConfig, SendStatus};

#[test]
fn sends_and_reads_back_over_ipv6() {
    let (namesrv, _) = multi_broker_cluster();
    assert!(namesrv.starts_with('['), "an IPv6 name server: {namesrv}");
    let p = Producer::new(ProducerConfig::new(&namesrv, &unique("V6Group")).unwrap()).unwrap();
    p.start().unwrap();
    let topic = unique("V6Topic");
    let loopback = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for i in 0..4 {
        let msg = Message::new(&topic, format!("over ipv6 {i}"));
        let r = p.send_blocking(&msg).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        // store host (16 bytes) + port + offset, in hex
        assert_eq!(r.offset_msg_id.len(), 56, "{}", r.offset_msg_id);
        let (store, offset) = decode_offset_msg_id(&r.offset_msg_id).unwrap();
        assert_eq!(store.ip(), loopback);
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_eq!(stored.message.body(), msg.body());
        assert_eq!(stored.commit_log_offset, offset);
        assert_eq!(stored.store_host, store);
        assert_eq!(stored.born_host.ip(), loopback, "we connected from ::1");
        assert_eq!(stored.sys_flag & 0x30, 0x30, "born and store host flags");
        assert_eq!(stored.offset_msg_id, r.offset_msg_id);
    }
    p.shutdown();
}

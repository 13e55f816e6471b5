//! TopicRouteData (GET_ROUTEINFO_BY_TOPIC body) in whichever JSON dialect the name server writes.
use std::collections::BTreeMap;

use serde::Deserialize;

use super::json::quote_bare_keys;
use crate::error::{Error, Result};

pub const PERM_READ: i32 = 4;
pub const PERM_WRITE: i32 = 2;
pub const MASTER_ID: i64 = 0;
/// Most queues a route may name, over all its brokers (for reading and for writing each): far
/// above any real topic, and low enough that a corrupt count cannot make the client build
/// billions of queues.
pub const MAX_ROUTE_QUEUES: i64 = 65_536;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    #[serde(default)]
    pub order_topic_conf: Option<String>,
    #[serde(default)]
    pub queue_datas: Vec<QueueData>,
    #[serde(default)]
    pub broker_datas: Vec<BrokerData>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    #[serde(default)]
    pub read_queue_nums: i32,
    #[serde(default)]
    pub write_queue_nums: i32,
    #[serde(default)]
    pub perm: i32,
    /// Brokers up to 4.8 spell it `topicSynFlag`.
    #[serde(default, alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    #[serde(default)]
    pub cluster: String,
    pub broker_name: String,
    /// broker id (0 = master) -> "host:port"
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
}

impl BrokerData {
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

impl TopicRouteData {
    /// Parses standard JSON and the fastjson form with unquoted numeric map keys.
    pub fn from_json(body: &[u8]) -> Result<TopicRouteData> {
        let route: TopicRouteData = serde_json::from_slice(&quote_bare_keys(body))
            .map_err(|e| Error::Protocol(format!("bad topic route JSON: {e}")))?;
        route.check_queue_counts()?;
        Ok(route)
    }

    /// The `broker:count` pairs of `orderTopicConf` (`broker-a:4;broker-b:4`); a count that is
    /// not a number counts 0.
    pub fn order_queue_counts(&self) -> impl Iterator<Item = (&str, i32)> {
        self.order_topic_conf
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter_map(|part| part.split_once(':'))
            .map(|(broker, n)| (broker, n.trim().parse().unwrap_or(0)))
    }

    /// Rejects a route whose queue counts add up past `MAX_ROUTE_QUEUES`.
    fn check_queue_counts(&self) -> Result<()> {
        let total = |counts: &mut dyn Iterator<Item = i32>| -> i64 {
            counts.map(|n| i64::from(n.max(0))).sum()
        };
        let counts = [
            (
                "readQueueNums",
                total(&mut self.queue_datas.iter().map(|q| q.read_queue_nums)),
            ),
            (
                "writeQueueNums",
                total(&mut self.queue_datas.iter().map(|q| q.write_queue_nums)),
            ),
            (
                "orderTopicConf",
                total(&mut self.order_queue_counts().map(|(_, n)| n)),
            ),
        ];
        match counts.iter().find(|(_, n)| *n > MAX_ROUTE_QUEUES) {
            Some((what, n)) => Err(Error::Protocol(format!(
                "the topic route names {n} queues in {what}, more than the {MAX_ROUTE_QUEUES} \
                 a route may have"
            ))),
            None => Ok(()),
        }
    }

    pub fn broker(&self, name: &str) -> Option<&BrokerData> {
        self.broker_datas.iter().find(|b| b.broker_name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_route() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},
          "brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],
          "filterServerTable":{},
          "queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(r.broker_datas[0].master_addr(), Some("10.0.0.1:10911"));
        assert_eq!(r.broker_datas[0].broker_addrs[&1], "10.0.0.2:10911");
        assert_eq!(r.queue_datas[0].write_queue_nums, 4);
        assert_eq!(r.queue_datas[0].perm, 6);
    }

    #[test]
    fn parses_fastjson_numeric_keys_and_old_spelling() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"b","cluster":"c"}],"filterServerTable":{},"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":8,"topicSynFlag":1,"writeQueueNums":8}]}"#;
        let r = TopicRouteData::from_json(body).unwrap();
        assert_eq!(
            r.broker("b").unwrap().master_addr(),
            Some("127.0.0.1:10911")
        );
        assert_eq!(r.queue_datas[0].topic_sys_flag, 1);
        assert_eq!(r.queue_datas[0].read_queue_nums, 8);
    }

    /// Found while writing the route fuzz target: a count of 2 000 000 000 queues made the
    /// producer and the consumer build that many queue entries (tens of gigabytes).
    #[test]
    fn rejects_routes_with_absurd_queue_counts() {
        let broker = r#""brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"b"}]"#;
        for bad in [
            format!(
                r#"{{{broker},"queueDatas":[{{"brokerName":"b","perm":6,"writeQueueNums":2000000000}}]}}"#
            ),
            format!(
                r#"{{{broker},"queueDatas":[{{"brokerName":"b","perm":6,"readQueueNums":65537}}]}}"#
            ),
            format!(r#"{{{broker},"orderTopicConf":"b:40000;c:40000"}}"#),
        ] {
            let e = TopicRouteData::from_json(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("more than the 65536"), "{e}");
        }
        let ok = format!(
            r#"{{{broker},"orderTopicConf":"b:4;c:x","queueDatas":[{{"brokerName":"b","perm":6,"readQueueNums":65536,"writeQueueNums":-5}}]}}"#
        );
        let r = TopicRouteData::from_json(ok.as_bytes()).unwrap();
        assert_eq!(
            r.order_queue_counts().collect::<Vec<_>>(),
            [("b", 4), ("c", 0)]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(TopicRouteData::from_json(b"{not json").is_err());
    }
}

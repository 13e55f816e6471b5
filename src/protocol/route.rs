//! TopicRouteData (GET_ROUTEINFO_BY_TOPIC body) in whichever JSON dialect the name server writes.
use std::collections::BTreeMap;

use serde::Deserialize;

use super::json::quote_bare_keys;
use crate::error::{Error, Result};

pub const PERM_READ: i32 = 4;
pub const PERM_WRITE: i32 = 2;
pub const MASTER_ID: i64 = 0;

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
        serde_json::from_slice(&quote_bare_keys(body))
            .map_err(|e| Error::Protocol(format!("bad topic route JSON: {e}")))
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

    #[test]
    fn rejects_garbage() {
        assert!(TopicRouteData::from_json(b"{not json").is_err());
    }
}

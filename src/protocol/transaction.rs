//! Transactional messages on the wire: the half-message marks, END_TRANSACTION (37, client to
//! broker, oneway) and the fields of CHECK_TRANSACTION_STATE (39, broker to client, oneway).
use std::borrow::Cow::Borrowed;

use super::code::request;
use crate::remoting::RemotingCommand;

/// `"true"` on a half message (a prepared transactional message).
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";
/// The producer group of a half message: the broker asks a producer of this group to check it.
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// How many times the broker has checked a half message (set by the broker).
pub const PROPERTY_TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";

/// sysFlag bits 2-3 of a message: what kind of transactional message it is.
pub const SYSFLAG_TRANSACTION_PREPARED: i32 = 0x4;
/// END_TRANSACTION commitOrRollback values.
pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;

/// EndTransactionRequestHeader: how a transaction ended, for the half message identified by its
/// commit log offset and its offset in the half queue.
#[derive(Debug, Clone, PartialEq)]
pub struct EndTransaction<'a> {
    pub topic: &'a str,
    pub producer_group: &'a str,
    /// The half message's queue offset (SendResult.queueOffset, or the checked message's).
    pub tran_state_table_offset: i64,
    pub commit_log_offset: i64,
    /// TRANSACTION_COMMIT_TYPE, TRANSACTION_ROLLBACK_TYPE or TRANSACTION_NOT_TYPE (unknown).
    pub commit_or_rollback: i32,
    pub from_transaction_check: bool,
    /// The client message id (UNIQ_KEY).
    pub msg_id: &'a str,
    pub transaction_id: Option<&'a str>,
    pub broker_name: &'a str,
    /// Why the state is what it is (a failed local transaction, a panicking checker).
    pub remark: Option<String>,
}

/// END_TRANSACTION; the caller sends it oneway to the master that stored the half message.
pub fn end_transaction(h: &EndTransaction<'_>) -> RemotingCommand {
    let mut fields = vec![
        (Borrowed("topic"), h.topic.to_string()),
        (Borrowed("producerGroup"), h.producer_group.to_string()),
        (
            Borrowed("tranStateTableOffset"),
            h.tran_state_table_offset.to_string(),
        ),
        (Borrowed("commitLogOffset"), h.commit_log_offset.to_string()),
        (
            Borrowed("commitOrRollback"),
            h.commit_or_rollback.to_string(),
        ),
        (
            Borrowed("fromTransactionCheck"),
            h.from_transaction_check.to_string(),
        ),
        (Borrowed("msgId"), h.msg_id.to_string()),
        (Borrowed("bname"), h.broker_name.to_string()),
    ];
    if let Some(id) = h.transaction_id {
        fields.push((Borrowed("transactionId"), id.to_string()));
    }
    let mut cmd = RemotingCommand::request(request::END_TRANSACTION, fields);
    cmd.remark = h.remark.clone();
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_transaction_carries_the_java_header_fields() {
        let cmd = end_transaction(&EndTransaction {
            topic: "T",
            producer_group: "G",
            tran_state_table_offset: 7,
            commit_log_offset: 1234,
            commit_or_rollback: TRANSACTION_ROLLBACK_TYPE,
            from_transaction_check: true,
            msg_id: "ID",
            transaction_id: Some("ID"),
            broker_name: "broker-a",
            remark: Some("why".into()),
        });
        assert_eq!(cmd.code, 37);
        for (k, v) in [
            ("topic", "T"),
            ("producerGroup", "G"),
            ("tranStateTableOffset", "7"),
            ("commitLogOffset", "1234"),
            ("commitOrRollback", "12"),
            ("fromTransactionCheck", "true"),
            ("msgId", "ID"),
            ("transactionId", "ID"),
            ("bname", "broker-a"),
        ] {
            assert_eq!(cmd.ext(k), Some(v), "{k}");
        }
        assert_eq!(cmd.remark_str(), "why");
    }
}

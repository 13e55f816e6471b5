//! Request and response codes of the remoting protocol (one table; the FFI status table and the
//! bindings derive their broker-code names from `response_code_name`).

/// Request codes the client sends or answers.
pub mod request {
    pub const PULL_MESSAGE: i32 = 11;
    pub const QUERY_MESSAGE: i32 = 12;
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    pub const GET_MAX_OFFSET: i32 = 30;
    pub const GET_MIN_OFFSET: i32 = 31;
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    pub const HEART_BEAT: i32 = 34;
    pub const UNREGISTER_CLIENT: i32 = 35;
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    pub const END_TRANSACTION: i32 = 37;
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    pub const LOCK_BATCH_MQ: i32 = 41;
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    pub const RESET_CONSUMER_CLIENT_OFFSET: i32 = 220;
    pub const GET_CONSUMER_STATUS_FROM_CLIENT: i32 = 221;
    pub const GET_CONSUMER_RUNNING_INFO: i32 = 307;
    pub const CONSUME_MESSAGE_DIRECTLY: i32 = 309;
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    pub const SEND_MESSAGE_V2: i32 = 310;
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// A reply of request-reply (MSG_TYPE=reply): the broker pushes it to the requester.
    pub const SEND_REPLY_MESSAGE_V2: i32 = 325;
    /// Broker to client: a reply to one of this client's requests.
    pub const PUSH_REPLY_MESSAGE_TO_CLIENT: i32 = 326;
}

/// Response codes (RemotingSysResponseCode + ResponseCode).
pub mod response {
    pub const SUCCESS: i32 = 0;
    pub const SYSTEM_ERROR: i32 = 1;
    pub const SYSTEM_BUSY: i32 = 2;
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    pub const NO_PERMISSION: i32 = 16;
    pub const TOPIC_NOT_EXIST: i32 = 17;
    pub const PULL_NOT_FOUND: i32 = 19;
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    pub const PULL_OFFSET_MOVED: i32 = 21;
    pub const QUERY_NOT_FOUND: i32 = 22;
    pub const NO_BUYER_ID: i32 = 204;
    pub const NOT_IN_CURRENT_UNIT: i32 = 205;
    pub const FLOW_CONTROL: i32 = 215;
    pub const GO_AWAY: i32 = 1500;
}

/// (code, name) for every response code a client may see.
pub const RESPONSE_CODES: &[(i32, &str)] = &[
    (0, "SUCCESS"),
    (1, "SYSTEM_ERROR"),
    (2, "SYSTEM_BUSY"),
    (3, "REQUEST_CODE_NOT_SUPPORTED"),
    (4, "TRANSACTION_FAILED"),
    (10, "FLUSH_DISK_TIMEOUT"),
    (11, "SLAVE_NOT_AVAILABLE"),
    (12, "FLUSH_SLAVE_TIMEOUT"),
    (13, "MESSAGE_ILLEGAL"),
    (14, "SERVICE_NOT_AVAILABLE"),
    (15, "VERSION_NOT_SUPPORTED"),
    (16, "NO_PERMISSION"),
    (17, "TOPIC_NOT_EXIST"),
    (18, "TOPIC_EXIST_ALREADY"),
    (19, "PULL_NOT_FOUND"),
    (20, "PULL_RETRY_IMMEDIATELY"),
    (21, "PULL_OFFSET_MOVED"),
    (22, "QUERY_NOT_FOUND"),
    (23, "SUBSCRIPTION_PARSE_FAILED"),
    (24, "SUBSCRIPTION_NOT_EXIST"),
    (25, "SUBSCRIPTION_NOT_LATEST"),
    (26, "SUBSCRIPTION_GROUP_NOT_EXIST"),
    (27, "FILTER_DATA_NOT_EXIST"),
    (28, "FILTER_DATA_NOT_LATEST"),
    (29, "INVALID_PARAMETER"),
    (200, "TRANSACTION_SHOULD_COMMIT"),
    (201, "TRANSACTION_SHOULD_ROLLBACK"),
    (202, "TRANSACTION_STATE_UNKNOW"),
    (203, "TRANSACTION_STATE_GROUP_WRONG"),
    (204, "NO_BUYER_ID"),
    (205, "NOT_IN_CURRENT_UNIT"),
    (206, "CONSUMER_NOT_ONLINE"),
    (207, "CONSUME_MSG_TIMEOUT"),
    (208, "NO_MESSAGE"),
    (209, "POLLING_FULL"),
    (210, "POLLING_TIMEOUT"),
    (211, "BROKER_NOT_EXIST"),
    (212, "BROKER_DISPATCH_NOT_COMPLETE"),
    (213, "BROADCAST_CONSUMPTION"),
    (215, "FLOW_CONTROL"),
    (501, "NOT_LEADER_FOR_QUEUE"),
    (604, "ILLEGAL_OPERATION"),
    (1500, "GO_AWAY"),
];

pub fn response_code_name(code: i32) -> &'static str {
    RESPONSE_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("UNKNOWN")
}

/// Names of the request codes in `request`, for messages.
const REQUEST_CODES: &[(i32, &str)] = &[
    (request::QUERY_MESSAGE, "QUERY_MESSAGE"),
    (request::VIEW_MESSAGE_BY_ID, "VIEW_MESSAGE_BY_ID"),
    (request::HEART_BEAT, "HEART_BEAT"),
    (request::UNREGISTER_CLIENT, "UNREGISTER_CLIENT"),
    (request::GET_ROUTEINFO_BY_TOPIC, "GET_ROUTEINFO_BY_TOPIC"),
    (request::SEND_MESSAGE_V2, "SEND_MESSAGE_V2"),
    (request::SEND_REPLY_MESSAGE_V2, "SEND_REPLY_MESSAGE_V2"),
];

/// "SEND_MESSAGE_V2 (310)", or "request code N" for a code without a name here.
pub fn describe_request(code: i32) -> String {
    match REQUEST_CODES.iter().find(|(c, _)| *c == code) {
        Some((_, name)) => format!("{name} ({code})"),
        None => format!("request code {code}"),
    }
}

/// Broker answers after which the Java producer retries a sync send on another broker.
pub const SEND_RETRY_RESPONSE_CODES: &[i32] = &[
    response::TOPIC_NOT_EXIST,
    response::SERVICE_NOT_AVAILABLE,
    response::SYSTEM_ERROR,
    response::SYSTEM_BUSY,
    response::NO_PERMISSION,
    response::NO_BUYER_ID,
    response::NOT_IN_CURRENT_UNIT,
    response::GO_AWAY,
];

//! What the client instance tells the logger: route changes and a name server nobody answers
//! on at start.
use super::instance::ClientInstance;
use super::route::TopicPublishInfo;

/// "broker-a:4, broker-b:4": writable queues per broker, in route order.
fn summary(info: &TopicPublishInfo) -> String {
    let mut out: Vec<(String, usize)> = Vec::new();
    for q in &info.queues {
        match out.last_mut() {
            Some((b, n)) if **b == *q.broker_name => *n += 1,
            _ => out.push((q.broker_name.to_string(), 1)),
        }
    }
    out.iter()
        .map(|(b, n)| format!("{b}:{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Logs a route that is new (debug) or differs from the one it replaces (info).
pub(crate) fn route_updated(
    topic: &str,
    previous: Option<&TopicPublishInfo>,
    new: &TopicPublishInfo,
) {
    let wanted = crate::log::enabled(crate::log::Level::Debug)
        || (previous.is_some() && crate::log::enabled(crate::log::Level::Info));
    if !wanted {
        return;
    }
    let now = summary(new);
    match previous {
        None => crate::log_debug!(
            "rmq::client",
            "route of topic {topic}: {now}{}",
            if new.from_default_topic {
                " (from the auto-create template TBW102)"
            } else {
                ""
            }
        ),
        Some(p) => {
            let before = summary(p);
            if before != now {
                crate::log_info!(
                    "rmq::client",
                    "route of topic {topic} changed: {before} -> {now}"
                );
            }
        }
    }
}

/// At start: is any name server answering? Sends need one, so when none accepts a connection
/// the logger says so (a warning) rather than the first send failing unexplained. Start itself
/// does not fail: a name server may come up later.
pub(crate) async fn probe_name_servers(instance: &ClientInstance) {
    if !crate::log::enabled(crate::log::Level::Warn) {
        return; // nobody to tell: no connection is made before it is needed
    }
    let addrs = &instance.config().name_servers;
    let mut problems = Vec::new();
    for addr in addrs {
        match instance.remoting().connection(addr).await {
            Ok(_) => return,
            Err(e) => problems.push(e.to_string()),
        }
    }
    crate::log_warn!(
        "rmq::client",
        "no name server answers ({}); sends fail until one does",
        problems.join("; ")
    );
}

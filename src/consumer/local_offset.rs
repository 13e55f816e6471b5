//! Offsets of a broadcasting consumer, kept in a local file as the Java client keeps them
//! (`LocalFileOffsetStore`): `<dir>/<ip@instance-name>/<group>/offsets.json`, `<dir>` defaulting
//! to `~/.rocketmq_offsets`, holding Java's `OffsetSerializeWrapper`:
//! `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:12,...}}` (fastjson writes the
//! queue object itself as the map key). Java reads our file and we read Java's.
//!
//! The instance name in the path is the configured one (`DEFAULT` when unset), not the
//! process-unique id the client registers with, so a restarted consumer finds its file, as a
//! Java broadcasting consumer (which keeps `DEFAULT`) does.
//!
//! Writes replace the file atomically: the new content goes to `offsets.json.tmp`, is synced,
//! then renamed over `offsets.json`; a crash leaves the old file or the new one, never a mix.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::Inner;
use crate::client::MessageQueue;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::protocol::mq_map;

pub(crate) struct LocalOffsetStore {
    path: PathBuf,
    /// Every offset known: what the file held at start, updated by every commit.
    table: Mutex<BTreeMap<MessageQueue, i64>>,
    /// Held while the file is written, so two writers never interleave.
    writing: Mutex<()>,
}

/// `dir` (or `~/.rocketmq_offsets`) / `client_id` / `group` / offsets.json.
pub(crate) fn offsets_path(dir: Option<&str>, client_id: &str, group: &str) -> Result<PathBuf> {
    let root = match dir {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    Error::InvalidArgument(
                    "HOME is not set: set consumer.local-offset-store-dir for the broadcasting \
                     offsets"
                        .into(),
                )
                })?;
            Path::new(&home).join(".rocketmq_offsets")
        }
    };
    Ok(root.join(client_id).join(group).join("offsets.json"))
}

/// ip@instance-name as Java's broadcasting consumer has it: the configured name, `DEFAULT`
/// included, so the path stays the same across restarts.
fn path_client_id(config: &ClientConfig) -> String {
    let ip = crate::protocol::ids::local_ip();
    if ip.is_ipv6() {
        format!("[{ip}]@{}", config.instance_name)
    } else {
        format!("{ip}@{}", config.instance_name)
    }
}

/// Opens the consumer's offset file (once; at start).
pub(super) fn open_for(inner: &Inner) -> Result<()> {
    if inner.local_offsets.get().is_some() {
        return Ok(());
    }
    let path = offsets_path(
        inner.config.local_offset_store_dir.as_deref(),
        &path_client_id(&inner.config.client),
        &inner.group,
    )?;
    let _ = inner.local_offsets.set(LocalOffsetStore::open(path)?);
    Ok(())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Resource(format!("cannot {what} {}: {e}", path.display()))
}

impl LocalOffsetStore {
    /// Opens the store at `path`, reading what the file holds (or, when it is missing, the
    /// `.bak` a Java client may have left). A file that cannot be read is an error.
    pub fn open(path: PathBuf) -> Result<LocalOffsetStore> {
        let mut table = BTreeMap::new();
        let bak = path.with_extension("json.bak");
        for p in [&path, &bak] {
            match std::fs::read(p) {
                Ok(content) => {
                    let entries = mq_map::parse_offset_table(&content, "offsetTable")
                        .map_err(|e| Error::Resource(format!("{}: {e}", p.display())))?;
                    table.extend(entries);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", p, e)),
            }
        }
        Ok(LocalOffsetStore {
            path,
            table: Mutex::new(table),
            writing: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.table.lock().get(mq).copied()
    }

    /// Records `offsets` and rewrites the file with every offset known.
    pub fn persist(&self, offsets: &[(MessageQueue, i64)]) -> Result<()> {
        let _writing = self.writing.lock();
        let content = {
            let mut table = self.table.lock();
            for (mq, o) in offsets {
                table.insert(mq.clone(), *o);
            }
            let mut s = String::from("{\"offsetTable\":");
            mq_map::write_map(&mut s, table.iter().map(|(q, o)| (q, o.to_string())));
            s.push('}');
            s
        };
        self.write_atomically(content.as_bytes())
    }

    fn write_atomically(&self, content: &[u8]) -> Result<()> {
        let path = &self.path;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        f.write_all(content)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_error("write", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_error("replace", path, e))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn mq(id: i32) -> MessageQueue {
        MessageQueue {
            topic: Arc::from("T"),
            broker_name: Arc::from("broker-a"),
            queue_id: id,
        }
    }

    #[test]
    fn persists_atomically_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("rmq-local-offsets-{}", std::process::id()));
        let path = offsets_path(Some(dir.to_str().unwrap()), "1.2.3.4@x", "G").unwrap();
        assert!(path.ends_with("1.2.3.4@x/G/offsets.json"));
        let store = LocalOffsetStore::open(path.clone()).unwrap();
        assert_eq!(store.get(&mq(0)), None);
        store.persist(&[(mq(0), 3), (mq(1), 9)]).unwrap();
        store.persist(&[(mq(0), 4)]).unwrap();
        assert!(!path.with_extension("json.tmp").exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:4,{"brokerName":"broker-a","queueId":1,"topic":"T"}:9}}"#
        );
        let again = LocalOffsetStore::open(path.clone()).unwrap();
        assert_eq!((again.get(&mq(0)), again.get(&mq(1))), (Some(4), Some(9)));
        // What the Java client 5.3.3 writes (OffsetSerializeWrapper.toJson(true)) for that table.
        std::fs::write(&path, "{\n\t\"offsetTable\":{{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":1,\n\t\t\t\"topic\":\"T\"\n\t\t}:9,{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":0,\n\t\t\t\"topic\":\"T\"\n\t\t}:4\n\t}\n}").unwrap();
        let java = LocalOffsetStore::open(path.clone()).unwrap();
        assert_eq!((java.get(&mq(0)), java.get(&mq(1))), (Some(4), Some(9)));
        std::fs::write(&path, "not json").unwrap();
        assert!(LocalOffsetStore::open(path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Message body compression, as the 5.x sysFlag bits name it: bit 0 says "compressed", bits 8-10
//! say which codec (1 LZ4 frame, 2 zstd frame, 3 zlib stream; 0 means zlib too, for senders older
//! than 4.9.4 that set bit 0 alone).
use std::io::{Read, Write};

use crate::error::{Error, Result};

pub const SYSFLAG_COMPRESSED: i32 = 0x1;
const SYSFLAG_TYPE_MASK: i32 = 0x700;
const SYSFLAG_TYPE_SHIFT: i32 = 8;

/// Largest body a compressed stored message may expand to. The broker limits the compressed size
/// only; this bounds what a corrupt or hostile body can make us allocate.
pub const MAX_DECOMPRESSED_SIZE: usize = 128 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zlib,
    Lz4,
    Zstd,
}

impl Codec {
    /// The names the configuration accepts (`producer.compress-type`).
    pub const NAMES: &'static [&'static str] = &["zlib", "lz4", "zstd"];

    pub fn name(self) -> &'static str {
        match self {
            Codec::Zlib => "zlib",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "zlib" => Some(Codec::Zlib),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// The levels the codec takes. LZ4 frames have none (Java ignores the level too).
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Codec::Zlib => 0..=9,
            Codec::Lz4 => 0..=22,
            Codec::Zstd => 1..=22,
        }
    }

    /// The sysFlag bits a producer sets for a body compressed with this codec.
    pub fn sys_flag(self) -> i32 {
        SYSFLAG_COMPRESSED
            | match self {
                Codec::Lz4 => 0x100,
                Codec::Zstd => 0x200,
                Codec::Zlib => 0x300,
            }
    }

    /// The codec of a stored message whose sysFlag has the compressed bit.
    pub fn of_sys_flag(sys_flag: i32) -> Result<Codec> {
        match (sys_flag & SYSFLAG_TYPE_MASK) >> SYSFLAG_TYPE_SHIFT {
            0 | 3 => Ok(Codec::Zlib),
            1 => Ok(Codec::Lz4),
            2 => Ok(Codec::Zstd),
            other => Err(Error::Protocol(format!(
                "unknown compression type {other} in sysFlag {sys_flag:#x}"
            ))),
        }
    }
}

/// How a producer compresses bodies: those of at least `threshold` bytes, with `codec` at `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionPolicy {
    pub threshold: usize,
    pub codec: Codec,
    pub level: i32,
}

impl Default for CompressionPolicy {
    /// Java's: 4096 bytes, zlib, level 5.
    fn default() -> Self {
        CompressionPolicy {
            threshold: 4096,
            codec: Codec::Zlib,
            level: 5,
        }
    }
}

impl CompressionPolicy {
    /// The compressed body and its sysFlag bits when `body` is at least the threshold, else
    /// `None` (send it as it is). Like Java, a codec failure also means "send it uncompressed";
    /// unlike Java, so does a body that compression would not make smaller (noise, media).
    pub fn apply(&self, body: &[u8]) -> Option<(Vec<u8>, i32)> {
        if body.len() < self.threshold {
            return None;
        }
        let out = compress(self.codec, self.level, body).ok()?;
        (out.len() < body.len()).then(|| (out, self.codec.sys_flag()))
    }
}

pub fn compress(codec: Codec, level: i32, data: &[u8]) -> Result<Vec<u8>> {
    let failed = |e: std::io::Error| Error::Protocol(format!("{} compression: {e}", codec.name()));
    match codec {
        Codec::Zlib => {
            let level = flate2::Compression::new(level.clamp(0, 9) as u32);
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2), level);
            enc.write_all(data).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        Codec::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            enc.write_all(data).map_err(failed)?;
            enc.finish()
                .map_err(|e| Error::Protocol(format!("lz4 compression: {e}")))
        }
        Codec::Zstd => zstd::bulk::compress(data, level.clamp(1, 22)).map_err(failed),
    }
}

/// The original body of a stored message whose sysFlag has the compressed bit.
pub fn decompress(sys_flag: i32, data: &[u8]) -> Result<Vec<u8>> {
    let codec = Codec::of_sys_flag(sys_flag)?;
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).min(MAX_DECOMPRESSED_SIZE));
    let limit = MAX_DECOMPRESSED_SIZE as u64 + 1;
    let read = match codec {
        Codec::Zlib => flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Lz4 => lz4_flex::frame::FrameDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Zstd => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(e) => Err(e),
        },
    };
    read.map_err(|e| {
        Error::Protocol(format!(
            "{} body ({} bytes) does not decompress: {e}",
            codec.name(),
            data.len()
        ))
    })?;
    if out.len() > MAX_DECOMPRESSED_SIZE {
        return Err(Error::Protocol(format!(
            "{} body expands past {MAX_DECOMPRESSED_SIZE} bytes",
            codec.name()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips_through_its_sys_flag() {
        let body = sample(100_000);
        for codec in [Codec::Zlib, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, 5, &body).unwrap();
            assert!(packed.len() < body.len(), "{codec:?} compresses");
            let flag = codec.sys_flag();
            assert_eq!(flag & SYSFLAG_COMPRESSED, 1);
            assert_eq!(Codec::of_sys_flag(flag).unwrap(), codec);
            assert_eq!(decompress(flag, &packed).unwrap(), body, "{codec:?}");
        }
    }

    #[test]
    fn formats_are_the_standard_ones() {
        // zlib stream (RFC 1950): CMF 0x78; not gzip (0x1f 0x8b), not raw deflate
        assert_eq!(compress(Codec::Zlib, 5, b"abc").unwrap()[0], 0x78);
        // LZ4 frame magic 0x184D2204, little endian
        assert_eq!(
            &compress(Codec::Lz4, 5, b"abc").unwrap()[..4],
            &[0x04, 0x22, 0x4d, 0x18]
        );
        // zstd frame magic 0xFD2FB528, little endian
        assert_eq!(
            &compress(Codec::Zstd, 5, b"abc").unwrap()[..4],
            &[0x28, 0xb5, 0x2f, 0xfd]
        );
    }

    #[test]
    fn type_zero_means_zlib_and_unknown_types_are_errors() {
        let packed = compress(Codec::Zlib, 5, b"old sender").unwrap();
        assert_eq!(
            decompress(SYSFLAG_COMPRESSED, &packed).unwrap(),
            b"old sender"
        );
        assert!(Codec::of_sys_flag(0x401).is_err());
        assert!(decompress(0x301, b"not zlib at all").is_err());
        assert!(decompress(0x101, b"not lz4").is_err());
        assert!(decompress(0x201, b"not zstd").is_err());
    }

    #[test]
    fn the_policy_compresses_from_the_threshold_on() {
        let p = CompressionPolicy::default();
        assert!(p.apply(&sample(4095)).is_none());
        let (packed, flag) = p.apply(&sample(4096)).unwrap();
        assert_eq!(flag, 0x301);
        assert_eq!(decompress(flag, &packed).unwrap(), sample(4096));
        // what does not shrink goes as it is
        let mut x = 1u32;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        assert!(p.apply(&noise).is_none());
    }

    #[test]
    fn decompression_is_bounded() {
        let zeros = vec![0u8; MAX_DECOMPRESSED_SIZE + 1];
        let packed = compress(Codec::Zstd, 3, &zeros).unwrap();
        drop(zeros);
        let e = decompress(Codec::Zstd.sys_flag(), &packed).unwrap_err();
        assert!(e.to_string().contains("expands past"), "{e}");
    }
}

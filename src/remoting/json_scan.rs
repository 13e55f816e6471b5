//! A small JSON scanner over the bytes of a remoting header: no allocation, no copies. It reads
//! what brokers write (plain strings, integers, nested values to skip) and gives up, returning
//! `None`, on anything it was not written for, so callers can fall back to a full parser.

pub(crate) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn ws(&mut self) {
        while self.pos < self.buf.len() && self.buf[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.buf.get(self.pos).copied()
    }

    pub fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// A string without escapes, as a slice; `None` if it has any.
    pub fn plain_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match *self.buf.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(&self.buf[start..self.pos - 1]);
                }
                b'\\' => return None,
                _ => self.pos += 1,
            }
        }
    }

    /// Any string, escapes included, as its JSON text (quotes included).
    pub fn raw_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.pos - 1;
        loop {
            match *self.buf.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(&self.buf[start..self.pos]);
                }
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
    }

    pub fn int(&mut self) -> Option<i64> {
        self.ws();
        let start = self.pos;
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        while self.pos < self.buf.len() && self.buf[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        std::str::from_utf8(&self.buf[start..self.pos])
            .ok()?
            .parse()
            .ok()
    }

    pub fn literal(&mut self, word: &[u8]) -> bool {
        self.ws();
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Skips any value (nested objects and arrays included).
    pub fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_str().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.raw_str()?;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            self.pos += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.pos += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.pos += 1,
                    }
                }
            }
            _ => {
                // number, true, false, null
                while let Some(&b) = self.buf.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                        break;
                    }
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// Checks an extFields object: plain string keys, plain string or null values.
    pub fn ext_object(&mut self) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.plain_str()?;
            self.eat(b':')?;
            if !self.literal(b"null") {
                self.plain_str()?;
            }
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }
}

/// The value of `key` in an extFields object checked by `Cursor::ext_object`; null and "" read as absent.
pub(crate) fn ext_get<'a>(ext: &'a [u8], key: &str) -> Option<&'a str> {
    let mut found = None;
    for_each_ext(ext, &mut |k, v| {
        if found.is_none() && k == key && !v.is_empty() {
            found = Some(v);
        }
    });
    found
}

/// Calls `f` with every (key, value) of an extFields object checked by `Cursor::ext_object`; nulls skipped.
pub(crate) fn for_each_ext<'a>(ext: &'a [u8], f: &mut dyn FnMut(&'a str, &'a str)) {
    if ext.is_empty() {
        return;
    }
    let mut c = Cursor { buf: ext, pos: 0 };
    if c.eat(b'{').is_none() || c.eat(b'}').is_some() {
        return;
    }
    loop {
        let Some(k) = c.plain_str() else { return };
        if c.eat(b':').is_none() {
            return;
        }
        if !c.literal(b"null") {
            let Some(v) = c.plain_str() else { return };
            if let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) {
                f(k, v);
            }
        }
        if c.eat(b',').is_none() {
            return;
        }
    }
}

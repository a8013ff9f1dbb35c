//! Upstream's `config.ini` format: Python `configparser` sections plus upstream's `eval` of the
//! two dict values, turned into a TOML table that [`super::config`] deserialises like a TOML
//! config (so both formats share every check and error message).
//!
//! # Rules
//! * `[section]` headers, `key = value` or `key: value`, keys case-insensitive, full-line comments
//!   starting with `#` or `;`, indented continuation lines; a repeated section or key is an error.
//! * Booleans as `getboolean`: `1/yes/true/on`, `0/no/false/off` (any case).
//! * `trial_params` and `combos_params` are dict literals, JSON or Python (`True`, `'str'`).

use std::path::Path;

use super::config::config_err;
use crate::error::Result;

/// Keys whose INI values follow `configparser.getboolean`.
const BOOL_KEYS: [&str; 4] = ["rand_partition", "random_w", "freeze_layer", "remap_w"];
/// Keys whose INI values are dict literals.
const DICT_KEYS: [&str; 2] = ["trial_params", "combos_params"];
/// Keys that are always text (paths, names), even when they look like numbers.
const TEXT_KEYS: [&str; 9] = [
    "orientation",
    "path_to_network",
    "path_to_results",
    "pretrained",
    "path_to_latents",
    "path_to_latent_labels",
    "net_name",
    "init",
    "task_name",
];

/// Parses the INI text into a TOML table with typed values (see the module docs).
pub(crate) fn ini_to_toml(text: &str, origin: &Path) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    let mut raw: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if indented {
            if let Some((_, keys)) = raw.last_mut() {
                if let Some((_, v)) = keys.last_mut() {
                    v.push('\n');
                    v.push_str(trimmed);
                    continue;
                }
            }
        }
        if trimmed.starts_with('[') {
            let name = trimmed
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .ok_or_else(|| {
                    config_err(
                        origin,
                        format!("line {lineno}"),
                        format!("bad section header {trimmed:?}"),
                    )
                })?
                .trim()
                .to_string();
            if raw.iter().any(|(s, _)| *s == name) {
                return Err(config_err(origin, format!("[{name}]"), "section given twice"));
            }
            raw.push((name, Vec::new()));
            continue;
        }
        let split = match (trimmed.find('='), trimmed.find(':')) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = split else {
            return Err(config_err(
                origin,
                format!("line {lineno}"),
                format!("expected `key = value`, got {trimmed:?}"),
            ));
        };
        let key = trimmed[..at].trim().to_lowercase();
        let value = trimmed[at + 1..].trim().to_string();
        let Some((section, keys)) = raw.last_mut() else {
            return Err(config_err(
                origin,
                key,
                format!("line {lineno}: a key before any [section]"),
            ));
        };
        if keys.iter().any(|(k, _)| *k == key) {
            return Err(config_err(origin, format!("[{section}] {key}"), "key given twice"));
        }
        keys.push((key, value));
    }
    for (section, keys) in raw {
        let mut sec = toml::Table::new();
        for (key, value) in keys {
            let name = format!("[{section}] {key}");
            let v = if DICT_KEYS.contains(&key.as_str()) {
                PyLiteral::parse(&value).map_err(|d| config_err(origin, &name, d))?
            } else if BOOL_KEYS.contains(&key.as_str()) {
                toml::Value::Boolean(getboolean(&value).ok_or_else(|| {
                    config_err(
                        origin,
                        &name,
                        format!("{value:?} is not a boolean (True/False, yes/no, on/off, 1/0)"),
                    )
                })?)
            } else if TEXT_KEYS.contains(&key.as_str()) {
                toml::Value::String(value)
            } else {
                scalar(&value)
            };
            sec.insert(key, v);
        }
        table.insert(section, toml::Value::Table(sec));
    }
    Ok(table)
}

fn getboolean(v: &str) -> Option<bool> {
    match v.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// An untyped INI scalar: integer, float, else text (the schema then rejects wrong types).
fn scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = v.parse::<f64>() {
        toml::Value::Float(f)
    } else {
        toml::Value::String(v.to_string())
    }
}

/// A small parser for the Python / JSON literals upstream `eval`s: dicts, lists, tuples,
/// strings (single or double quotes), ints, floats, `True`/`False` (`true`/`false`).
struct PyLiteral<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> PyLiteral<'a> {
    fn parse(text: &'a str) -> std::result::Result<toml::Value, String> {
        let mut p = PyLiteral {
            s: text.as_bytes(),
            pos: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.pos != p.s.len() {
            return Err(format!("unexpected text after the literal at column {}", p.pos + 1));
        }
        if !v.is_table() {
            return Err("must be a dict literal {...}".into());
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at column {}", c as char, self.pos + 1))
        }
    }

    fn value(&mut self) -> std::result::Result<toml::Value, String> {
        match self.peek() {
            Some(b'{') => self.dict(),
            Some(b'[') => self.list(b'[', b']'),
            Some(b'(') => self.list(b'(', b')'),
            Some(b'"') | Some(b'\'') => Ok(toml::Value::String(self.string()?)),
            Some(_) => self.atom(),
            None => Err("unexpected end of the literal".into()),
        }
    }

    fn dict(&mut self) -> std::result::Result<toml::Value, String> {
        self.expect(b'{')?;
        let mut t = toml::Table::new();
        loop {
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(toml::Value::Table(t));
            }
            if !matches!(self.peek(), Some(b'"') | Some(b'\'')) {
                return Err(format!("expected a quoted key at column {}", self.pos + 1));
            }
            let k = self.string()?;
            self.expect(b':')?;
            let v = self.value()?;
            if t.insert(k.clone(), v).is_some() {
                return Err(format!("key {k:?} given twice"));
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected `,` or `}}` at column {}", self.pos + 1)),
            }
        }
    }

    fn list(&mut self, open: u8, close: u8) -> std::result::Result<toml::Value, String> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(toml::Value::Array(items));
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected `,` or `{}` at column {}",
                        close as char,
                        self.pos + 1
                    ))
                }
            }
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos] != quote {
            if self.s[self.pos] == b'\\' {
                return Err(format!("escape sequences are not supported (column {})", self.pos + 1));
            }
            self.pos += 1;
        }
        if self.pos >= self.s.len() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        self.pos += 1;
        Ok(out)
    }

    fn atom(&mut self) -> std::result::Result<toml::Value, String> {
        let start = self.pos;
        while self.pos < self.s.len() && !matches!(self.s[self.pos], b',' | b'}' | b']' | b')' | b':') {
            self.pos += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.pos]).trim().to_string();
        match word.as_str() {
            "True" | "true" => Ok(toml::Value::Boolean(true)),
            "False" | "false" => Ok(toml::Value::Boolean(false)),
            "None" | "null" => Err(format!("None/null is not a valid value (column {})", start + 1)),
            w => match scalar(w) {
                toml::Value::String(_) => Err(format!("{w:?} is not a number, string or boolean literal")),
                v => Ok(v),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_parse() {
        let v = PyLiteral::parse("{'a': [1, 2.5, 1e-06], \"b\": True, 'c': ('x', 'y')}");
        let v = v.ok().and_then(|v| v.as_table().cloned());
        let t = v.as_ref();
        assert_eq!(t.and_then(|t| t.get("b")), Some(&toml::Value::Boolean(true)));
        assert!(PyLiteral::parse("{'a': None}").is_err());
        assert!(PyLiteral::parse("[1]").is_err());
        assert!(PyLiteral::parse("{'a': 1").is_err());
    }
}

//! The JSON shapes of ttnn graph capture, as tolerant serde types.
//!
//! `params` values are strings in older tt-metal (`"size":"24576"`) and
//! integers in newer ones (`"size":24576`); [`ParamValue`] takes either.
//! Unknown keys are ignored; unknown node types are the converter's business.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// One `params` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// null, an array or an object: present but not a scalar.
    Other,
}

impl<'a> ParamValue<'a> {
    /// The value as an unsigned integer; strings are parsed (`"24576"`).
    pub fn as_u64(&self) -> Result<u64, String> {
        match self {
            ParamValue::U64(v) => Ok(*v),
            ParamValue::I64(v) if *v >= 0 => Ok(*v as u64),
            ParamValue::F64(v) if *v >= 0.0 && v.fract() == 0.0 && *v < 1.8e19 => Ok(*v as u64),
            ParamValue::Str(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("'{s}' is not a non-negative integer")),
            other => Err(format!(
                "{} is not a non-negative integer",
                other.describe()
            )),
        }
    }

    pub fn as_i64(&self) -> Result<i64, String> {
        match self {
            ParamValue::I64(v) => Ok(*v),
            ParamValue::U64(v) => i64::try_from(*v).map_err(|_| format!("{v} is out of range")),
            ParamValue::Str(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("'{s}' is not an integer")),
            other => Err(format!("{} is not an integer", other.describe())),
        }
    }

    /// `true`/`false`, `1`/`0` (C++ `std::to_string(bool)`), as string or value.
    pub fn as_bool(&self) -> Result<bool, String> {
        match self {
            ParamValue::Bool(b) => Ok(*b),
            ParamValue::U64(v) => Ok(*v != 0),
            ParamValue::I64(v) => Ok(*v != 0),
            ParamValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(format!("'{s}' is not a boolean")),
            },
            other => Err(format!("{} is not a boolean", other.describe())),
        }
    }

    /// The value as text (numbers are formatted).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            ParamValue::Str(s) => Cow::Borrowed(s.as_ref()),
            ParamValue::U64(v) => Cow::Owned(v.to_string()),
            ParamValue::I64(v) => Cow::Owned(v.to_string()),
            ParamValue::F64(v) => Cow::Owned(v.to_string()),
            ParamValue::Bool(v) => Cow::Owned(v.to_string()),
            ParamValue::Other => Cow::Borrowed(""),
        }
    }

    fn describe(&self) -> String {
        match self {
            ParamValue::Str(s) => format!("'{s}'"),
            ParamValue::U64(v) => v.to_string(),
            ParamValue::I64(v) => v.to_string(),
            ParamValue::F64(v) => v.to_string(),
            ParamValue::Bool(v) => v.to_string(),
            ParamValue::Other => "a non-scalar value".into(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ParamValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParamValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a parameter value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ParamValue::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ParamValue::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ParamValue::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ParamValue::F64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ParamValue::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ParamValue::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ParamValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ParamValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The `params` keys the importer reads (tt-metal's `graph_consts.hpp`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params<'a> {
    #[serde(borrow)]
    pub name: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub size: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub address: Option<ParamValue<'a>>,
    /// "DRAM" or "L1" (tt-metal folds L1_SMALL and TRACE into these two here).
    #[serde(borrow, rename = "type")]
    pub type_: Option<ParamValue<'a>>,
    /// Exact buffer type, by name or number, where newer versions give it.
    #[serde(borrow)]
    pub buffer_type: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub buffer_type_value: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub exact_buffer_type: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub layout: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub page_size: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub num_cores: Option<ParamValue<'a>>,
    /// Bytes reserved in each bank (`Buffer::aligned_size_per_bank`), where
    /// newer versions give it.
    #[serde(borrow)]
    pub max_size_per_bank: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub device_id: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub core_range_set: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub globally_allocated: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub error_type: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub error_message: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub error_operation: Option<ParamValue<'a>>,
}

/// One graph node. Other keys (`arguments`, `input_tensors`,
/// `stacking_level`, `duration_ns`) are skipped.
#[derive(Debug, Deserialize)]
pub struct RawNode<'a> {
    #[serde(default)]
    pub counter: Option<u64>,
    /// `node_name` in the very first versions of graph capture.
    #[serde(borrow, default, alias = "node_name")]
    pub node_type: Option<Cow<'a, str>>,
    /// `null` is taken as no params.
    #[serde(borrow, default, deserialize_with = "null_as_default")]
    pub params: Params<'a>,
    #[serde(default)]
    pub connections: Vec<u64>,
}

fn null_as_default<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Params<'a>, D::Error> {
    Ok(Option::<Params<'a>>::deserialize(d)?.unwrap_or_default())
}

/// One entry of `devices` in `end_graph_capture_to_file`'s report.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDevice<'a> {
    #[serde(borrow)]
    pub device_id: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub arch: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub l1_num_banks: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub l1_bank_size: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub worker_l1_size: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub address_at_first_l1_cb_buffer: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub num_dram_channels: Option<ParamValue<'a>>,
    #[serde(borrow)]
    pub dram_size_per_channel: Option<ParamValue<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_accept_strings_and_integers() {
        let old: RawNode = serde_json::from_str(
            r#"{"connections":[10],"counter":11,"node_type":"buffer_allocate","params":{"address":"1953396066","layout":"INTERLEAVED","size":"24576","type":"L1"}}"#,
        )
        .unwrap();
        let new: RawNode = serde_json::from_str(
            r#"{"arguments":["a"],"connections":[10],"counter":11,"input_tensors":[],"node_type":"buffer_allocate","params":{"address":1953396066,"layout":"INTERLEAVED","size":24576,"type":"L1","extra":{"x":[1]}},"stacking_level":2}"#,
        )
        .unwrap();
        for n in [&old, &new] {
            assert_eq!(n.counter, Some(11));
            assert_eq!(n.node_type.as_deref(), Some("buffer_allocate"));
            assert_eq!(n.connections, [10]);
            assert_eq!(n.params.size.as_ref().unwrap().as_u64(), Ok(24576));
            assert_eq!(n.params.address.as_ref().unwrap().as_u64(), Ok(1953396066));
            assert_eq!(n.params.type_.as_ref().unwrap().text(), "L1");
        }
        assert!(ParamValue::Str("x1".into()).as_u64().is_err());
        assert_eq!(ParamValue::Str("1".into()).as_bool(), Ok(true));
        assert_eq!(ParamValue::Str("false".into()).as_bool(), Ok(false));
        assert_eq!(ParamValue::I64(-1).as_i64(), Ok(-1));
        assert!(ParamValue::I64(-1).as_u64().is_err());
    }

    #[test]
    fn null_params_are_no_params() {
        let n: RawNode =
            serde_json::from_str(r#"{"counter":3,"node_type":"capture_end","params":null}"#)
                .unwrap();
        assert!(n.params.size.is_none());
        assert!(n.connections.is_empty());
    }

    #[test]
    fn first_versions_spell_node_type_node_name() {
        let n: RawNode = serde_json::from_str(
            r#"{"counter":0,"node_name":"capture_start","params":{},"connections":[1]}"#,
        )
        .unwrap();
        assert_eq!(n.node_type.as_deref(), Some("capture_start"));
    }
}

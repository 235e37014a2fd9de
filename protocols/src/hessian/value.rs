//! The Hessian 2.0 value model: one Rust type per kind of value on the wire.
//!
//! The model is lossless for everything hessian-lite distinguishes, so that a decoded value
//! re-encodes to the same bytes: list and map type names are kept, fixed- and variable-length
//! lists are told apart, objects carry their class definition (field order included) and a value
//! reference (`Q n`) stays a [`Value::Ref`] instead of being expanded, which keeps cycles and
//! shared objects representable without unbounded expansion.

use std::sync::Arc;

/// One Hessian value.
///
/// Doubles compare by bit pattern (so `NaN == NaN` and `0.0 != -0.0`), which makes `Value` usable
/// as an exact expectation in tests and keeps `Eq` lawful.
#[derive(Debug, Clone)]
pub enum Value {
    /// `N`.
    Null,
    /// `T` / `F`.
    Bool(bool),
    /// A 32-bit int (Java `int`, `short`, `byte` and their boxes).
    Int(i32),
    /// A 64-bit long.
    Long(i64),
    /// A 64-bit double (Java `float` is widened to double on the wire).
    Double(f64),
    /// A `java.util.Date`: milliseconds since the Unix epoch, UTC.
    Date(i64),
    /// A string. Lone UTF-16 surrogates from the wire are replaced by U+FFFD when decoding.
    String(String),
    /// A byte array.
    Binary(Vec<u8>),
    /// A list, array or collection.
    List(List),
    /// A map.
    Map(Map),
    /// An instance of a class described by a class definition.
    Object(Object),
    /// A back-reference (`Q n`) to the n-th list, map or object of the stream, counted in the
    /// order they start (pre-order).
    Ref(u32),
}

/// A list, array or collection (`V`, `X`, `U`, `W`, `0x70..=0x7F`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    /// The type name (`"[int"`, `"java.util.LinkedList"`, ...), `None` for untyped lists
    /// (Java `ArrayList`).
    pub type_name: Option<String>,
    /// The elements, in order.
    pub items: Vec<Value>,
    /// `true` for the variable-length forms terminated by `Z` (`U`, `W`); hessian-lite writes
    /// fixed-length lists for ordinary collections.
    pub variable_length: bool,
}

/// A map (`H` untyped, `M` typed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    /// The type name (`"java.util.TreeMap"`, ...), `None` for untyped maps (Java `HashMap`).
    pub type_name: Option<String>,
    /// The entries in wire order (which is the Java map's iteration order).
    pub entries: Vec<(Value, Value)>,
}

/// A class definition (`C`): the class name and its field names, in the order instances carry
/// their field values. The order is the writer's choice (hessian-lite puts primitives first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassDef {
    /// The Java class name, e.g. `demo.User`.
    pub name: String,
    /// The field names, in wire order.
    pub fields: Vec<String>,
}

/// An object instance (`O`, `0x60..=0x6F`): a class definition and one value per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The class definition, shared by every instance of the class within a stream.
    pub class: Arc<ClassDef>,
    /// The field values, in the order of `class.fields`.
    pub fields: Vec<Value>,
}

// === impl Value ===

impl Value {
    /// The value as a decoder reads it back after encoding: the Java-compatible encoder writes
    /// `-0.0` as the compact zero (`5B`) and every NaN as the canonical NaN, so those doubles do
    /// not round-trip bit for bit. Everything else is unchanged. Round-trip checks compare a
    /// decoded value with the original's `wire_normalized()`.
    pub fn wire_normalized(&self) -> Value {
        match self {
            Value::Double(d) if *d == 0.0 => Value::Double(0.0),
            Value::Double(d) if d.is_nan() => Value::Double(f64::NAN),
            Value::List(l) => Value::List(List {
                items: l.items.iter().map(Value::wire_normalized).collect(),
                ..l.clone()
            }),
            Value::Map(m) => Value::Map(Map {
                type_name: m.type_name.clone(),
                entries: m
                    .entries
                    .iter()
                    .map(|(k, v)| (k.wire_normalized(), v.wire_normalized()))
                    .collect(),
            }),
            Value::Object(o) => Value::Object(Object::new(
                Arc::clone(&o.class),
                o.fields.iter().map(Value::wire_normalized).collect(),
            )),
            other => other.clone(),
        }
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    /// `true` for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value of an int, or of a long that fits in 32 bits.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int(v) => Some(*v),
            Value::Long(v) => i32::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value of an int or a long.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of a double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The list, if this is a list.
    pub fn as_list(&self) -> Option<&List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The map, if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The object, if this is an object instance.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A short name of the kind of value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Long(_) => "long",
            Value::Double(_) => "double",
            Value::Date(_) => "date",
            Value::String(_) => "string",
            Value::Binary(_) => "binary",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Ref(_) => "ref",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Long(a), Value::Long(b)) => a == b,
            // Bitwise: exact expectations, and `Eq` stays reflexive for NaN.
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Binary(a), Value::Binary(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            (Value::Ref(a), Value::Ref(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Long(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(v)
    }
}

impl From<List> for Value {
    fn from(v: List) -> Self {
        Value::List(v)
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Value::Map(v)
    }
}

impl From<Object> for Value {
    fn from(v: Object) -> Self {
        Value::Object(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

// === impl List ===

impl List {
    /// An untyped fixed-length list (what hessian-lite writes for `ArrayList`).
    pub fn untyped(items: Vec<Value>) -> Self {
        Self {
            type_name: None,
            items,
            variable_length: false,
        }
    }

    /// A typed fixed-length list, e.g. `"[int"` for `int[]` or `"java.util.LinkedList"`.
    pub fn typed(type_name: impl Into<String>, items: Vec<Value>) -> Self {
        Self {
            type_name: Some(type_name.into()),
            items,
            variable_length: false,
        }
    }
}

// === impl Map ===

impl Map {
    /// An untyped map (what hessian-lite writes for `HashMap`).
    pub fn untyped(entries: Vec<(Value, Value)>) -> Self {
        Self {
            type_name: None,
            entries,
        }
    }

    /// A typed map, e.g. `"java.util.TreeMap"`.
    pub fn typed(type_name: impl Into<String>, entries: Vec<(Value, Value)>) -> Self {
        Self {
            type_name: Some(type_name.into()),
            entries,
        }
    }

    /// The value of the first entry whose key is the string `key`.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

// === impl ClassDef ===

impl ClassDef {
    /// A class definition from a name and field names in wire order.
    pub fn new<I, S>(name: impl Into<String>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            fields: fields.into_iter().map(Into::into).collect(),
        }
    }
}

// === impl Object ===

impl Object {
    /// An instance of `class`; `fields` must hold one value per field of the definition (the
    /// encoder rejects a mismatch).
    pub fn new(class: Arc<ClassDef>, fields: Vec<Value>) -> Self {
        Self { class, fields }
    }

    /// The value of the field called `name`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.class
            .fields
            .iter()
            .position(|f| f == name)
            .and_then(|i| self.fields.get(i))
    }
}

//! Request and response shapes for the registry: the JSON schema of a type (from `schemars`)
//! turned into go-micro's [`Value`] tree (`{name, type, values}`), as `micro get service`
//! shows it (`Request: { name string }`).
//!
//! Mapping: `string`; `bool`; integers by their schema format (`int32`, `int64`, `uint32`,
//! `uint64`, ..., `int64` when none is given); `double` (or `float` for `f32`) for numbers;
//! a struct is its type name with its fields as `values` (JSON field names, so serde renames
//! show); `Vec<T>` is `[]T` with `T`'s fields; `Option<T>` is `T`; a map is `map[string]T`;
//! a unit-only enum is `string`; other enums are their type name without fields; anything
//! else is `any`. Nested structs are described [`MAX_DEPTH`] levels deep, so recursive types
//! stop there (the deepest level keeps its type name, with no fields).
//!
//! Fields come in the order of the schema's properties: alphabetical, unless schemars'
//! `preserve_order` feature is on (then declaration order).

use crate::registry::Value;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value as Json};
use std::marker::PhantomData;

/// How many levels of nested structs are described.
pub const MAX_DEPTH: usize = 8;

/// The go-micro shape of `T`: `name` = `type` = the type's name, `values` = its fields.
/// `None` for types that carry nothing describable (`()`, or a schema that allows anything).
pub fn value_of<T: JsonSchema + ?Sized>() -> Option<Value> {
    let schema = SchemaGenerator::default().into_root_schema_for::<T>();
    let root = schema.as_value();
    let name = root
        .get("title")
        .and_then(Json::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| T::schema_name().into_owned());
    let shapes = Shapes {
        root,
        defs: root.get("$defs").and_then(Json::as_object),
    };
    let (type_, values) = shapes.shape(root, Some(&name), 0)?;
    if type_ == ANY {
        return None;
    }
    Some(Value {
        name,
        type_,
        values,
    })
}

const ANY: &str = "any";

/// A schema and its definitions, for resolving `$ref`s.
struct Shapes<'s> {
    root: &'s Json,
    defs: Option<&'s Map<String, Json>>,
}

/// A type name and its fields.
type Shape = (String, Vec<Value>);

impl<'s> Shapes<'s> {
    /// The schema a `$ref` points at, with the name of the type it describes.
    fn resolve(&self, reference: &str) -> Option<(&'s Json, String)> {
        if reference == "#" {
            let name = self.root.get("title").and_then(Json::as_str).unwrap_or(ANY);
            return Some((self.root, name.to_string()));
        }
        let key = reference
            .strip_prefix("#/$defs/")?
            .replace("~1", "/")
            .replace("~0", "~");
        let target = self.defs?.get(&key)?;
        let name = target
            .get("title")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or(key);
        Some((target, name))
    }

    /// The shape of `schema`; `name` is the type's name when the caller knows it (from a
    /// `$ref` or the root title). `None` for `null` and impossible schemas.
    fn shape(&self, schema: &'s Json, name: Option<&str>, depth: usize) -> Option<Shape> {
        let obj = match schema {
            Json::Bool(true) => return Some((ANY.into(), Vec::new())),
            Json::Object(obj) => obj,
            _ => return None,
        };
        if let Some(reference) = obj.get("$ref").and_then(Json::as_str) {
            let (target, target_name) = self.resolve(reference)?;
            return self.shape(target, Some(&target_name), depth);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(members) = obj.get(key).and_then(Json::as_array) {
                return self.union(members, name, depth);
            }
        }
        if let Some([only]) = obj.get("allOf").and_then(Json::as_array).map(Vec::as_slice) {
            return self.shape(only, name, depth);
        }
        let type_ = match obj.get("type") {
            Some(Json::String(t)) => Some(t.as_str()),
            Some(Json::Array(types)) => {
                let mut not_null = types
                    .iter()
                    .filter_map(Json::as_str)
                    .filter(|t| *t != "null");
                match (not_null.next(), not_null.next()) {
                    (Some(one), None) => Some(one),
                    (None, _) => Some("null"),
                    _ => return Some((ANY.into(), Vec::new())),
                }
            }
            _ => None,
        };
        let format = obj.get("format").and_then(Json::as_str);
        let scalar = |t: &str| Some((t.to_string(), Vec::new()));
        match type_ {
            Some("string") => scalar("string"),
            Some("boolean") => scalar("bool"),
            Some("integer") => scalar(integer(format)),
            Some("number") => scalar(if format == Some("float") {
                "float"
            } else {
                "double"
            }),
            Some("null") => None,
            Some("array") => {
                let (item, values) = match obj.get("items") {
                    Some(items) => self
                        .shape(items, None, depth)
                        .unwrap_or_else(|| (ANY.into(), Vec::new())),
                    None => (ANY.into(), Vec::new()),
                };
                Some((format!("[]{item}"), values))
            }
            Some("object") => Some(self.object(obj, name, depth)),
            Some(_) => scalar(ANY),
            None => match obj.get("enum").or_else(|| obj.get("const")) {
                Some(values) => scalar(literal_type(values)),
                None => scalar(ANY),
            },
        }
    }

    /// `Option<T>` (one member besides `null`) is `T`; an enum whose members are all
    /// strings is `string`; other unions are their type name.
    fn union(&self, members: &'s [Json], name: Option<&str>, depth: usize) -> Option<Shape> {
        let not_null: Vec<&Json> = members
            .iter()
            .filter(|m| m.get("type").and_then(Json::as_str) != Some("null"))
            .collect();
        if let [only] = not_null.as_slice() {
            return self.shape(only, name, depth);
        }
        let all_strings = not_null.iter().all(|m| {
            self.shape(m, None, MAX_DEPTH)
                .is_some_and(|(t, _)| t == "string")
        });
        if all_strings && !not_null.is_empty() {
            return Some(("string".into(), Vec::new()));
        }
        Some((name.unwrap_or(ANY).to_string(), Vec::new()))
    }

    /// A struct (its fields) or a map (`map[string]T`).
    fn object(&self, obj: &'s Map<String, Json>, name: Option<&str>, depth: usize) -> Shape {
        let properties = obj.get("properties").and_then(Json::as_object);
        let additional = obj.get("additionalProperties");
        if properties.is_none()
            && let Some(extra) = additional.filter(|a| !matches!(a, Json::Bool(false)))
        {
            let (item, values) = self
                .shape(extra, None, depth)
                .unwrap_or_else(|| (ANY.into(), Vec::new()));
            return (format!("map[string]{item}"), values);
        }
        let type_name = obj
            .get("title")
            .and_then(Json::as_str)
            .or(name)
            .unwrap_or("object")
            .to_string();
        if depth >= MAX_DEPTH {
            return (type_name, Vec::new());
        }
        let fields = properties
            .into_iter()
            .flatten()
            .filter_map(|(field, schema)| {
                let (type_, values) = self.shape(schema, None, depth + 1)?;
                Some(Value {
                    name: field.clone(),
                    type_,
                    values,
                })
            })
            .collect();
        (type_name, fields)
    }
}

/// The Go integer type of a schemars integer format.
fn integer(format: Option<&str>) -> &str {
    match format {
        None | Some("int") => "int64",
        Some("uint") => "uint64",
        Some(other) => other,
    }
}

/// The type of an `enum`/`const` schema's literal values.
fn literal_type(values: &Json) -> &'static str {
    let one = |v: &Json| match v {
        Json::String(_) => "string",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "double",
        Json::Number(_) => "int64",
        _ => ANY,
    };
    match values {
        Json::Array(items) => {
            let mut types = items.iter().map(one);
            let first = types.next().unwrap_or(ANY);
            if types.all(|t| t == first) {
                first
            } else {
                ANY
            }
        }
        other => one(other),
    }
}

/// Finds the shape of a type for generated code, whether or not the type implements
/// `JsonSchema`: `{ use ShapeOf as _; use NoShape as _; (&Probe::<T>::new()).shape() }` is
/// [`value_of::<T>()`](value_of) when `T: JsonSchema` and `None` otherwise.
#[doc(hidden)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// A probe for `T`.
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The shape of a `JsonSchema` type (chosen first by method resolution).
#[doc(hidden)]
pub trait ShapeOf {
    /// The shape.
    fn shape(&self) -> Option<Value>;
    /// The JSON Schema, as text.
    fn json_schema(&self) -> Option<String>;
}

impl<T: JsonSchema> ShapeOf for Probe<T> {
    fn shape(&self) -> Option<Value> {
        value_of::<T>()
    }
    fn json_schema(&self) -> Option<String> {
        json_schema_of::<T>()
    }
}

/// No shape, for types without a schema (found only through an extra reference).
#[doc(hidden)]
pub trait NoShape {
    /// No shape.
    fn shape(&self) -> Option<Value> {
        None
    }
    /// No schema.
    fn json_schema(&self) -> Option<String> {
        None
    }
}

/// The endpoint metadata key holding the request's JSON Schema (see [`json_schema_of`]).
pub const REQUEST_SCHEMA: &str = "request_schema";
/// The endpoint metadata key holding the response's JSON Schema.
pub const RESPONSE_SCHEMA: &str = "response_schema";

/// `T`'s JSON Schema (schemars, draft 2020-12, its definitions under `$defs`) as compact
/// JSON text, kept in endpoint metadata beside the go-micro shape: the go-micro tree loses
/// required fields, enum variants and docs, the schema keeps them (the API gateway's OpenAPI
/// document is built from it). `None` for `()` and for types that accept anything.
pub fn json_schema_of<T: JsonSchema + ?Sized>() -> Option<String> {
    value_of::<T>()?;
    let schema = SchemaGenerator::default().into_root_schema_for::<T>();
    serde_json::to_string(schema.as_value()).ok()
}

impl<T> NoShape for &Probe<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use std::collections::HashMap;

    fn v(name: &str, type_: &str, values: Vec<Value>) -> Value {
        Value {
            name: name.into(),
            type_: type_.into(),
            values,
        }
    }

    fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
        value
            .values
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {value:?}"))
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct HelloRequest {
        name: String,
    }

    #[test]
    fn hello_request_is_name_string() {
        assert_eq!(
            value_of::<HelloRequest>(),
            Some(v(
                "HelloRequest",
                "HelloRequest",
                vec![v("name", "string", vec![])]
            ))
        );
    }

    #[allow(dead_code)]
    #[derive(JsonSchema, serde::Serialize)]
    struct Inner {
        #[serde(rename = "Label")]
        label: String,
        ratio: f32,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    enum Color {
        Red,
        Green,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    enum Shape {
        Circle(f64),
        Square { side: f64 },
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Outer {
        inner: Inner,
        maybe: Option<Inner>,
        maybe_text: Option<String>,
        list: Vec<Inner>,
        counts: HashMap<String, i32>,
        color: Color,
        shape: Shape,
        small: u32,
        big: i64,
        size: usize,
        ok: bool,
        score: f64,
        bytes: Vec<u8>,
    }

    #[test]
    fn nested_vec_option_map_enum_and_numbers() {
        let outer = value_of::<Outer>().expect("a shape");
        assert_eq!(
            (outer.name.as_str(), outer.type_.as_str()),
            ("Outer", "Outer")
        );
        let inner = vec![v("Label", "string", vec![]), v("ratio", "float", vec![])];
        assert_eq!(field(&outer, "inner"), &v("inner", "Inner", inner.clone()));
        assert_eq!(field(&outer, "maybe"), &v("maybe", "Inner", inner.clone()));
        assert_eq!(
            field(&outer, "maybe_text"),
            &v("maybe_text", "string", vec![])
        );
        assert_eq!(field(&outer, "list"), &v("list", "[]Inner", inner));
        assert_eq!(field(&outer, "counts").type_, "map[string]int32");
        assert_eq!(field(&outer, "color").type_, "string");
        assert_eq!(field(&outer, "shape"), &v("shape", "Shape", vec![]));
        assert_eq!(field(&outer, "small").type_, "uint32");
        assert_eq!(field(&outer, "big").type_, "int64");
        assert_eq!(field(&outer, "size").type_, "uint64");
        assert_eq!(field(&outer, "ok").type_, "bool");
        assert_eq!(field(&outer, "score").type_, "double");
        assert_eq!(field(&outer, "bytes").type_, "[]uint8");
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Tree {
        name: String,
        children: Vec<Tree>,
        parent: Option<Box<Tree>>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Forest {
        tree: Tree,
    }

    fn depth(value: &Value, via: &str) -> usize {
        match value.values.iter().find(|f| f.name == via) {
            Some(next) => 1 + depth(next, via),
            None => 0,
        }
    }

    #[test]
    fn recursion_stops_at_the_depth_limit() {
        let tree = value_of::<Tree>().expect("a shape");
        assert_eq!(field(&tree, "children").type_, "[]Tree");
        assert_eq!(field(&tree, "parent").type_, "Tree");
        assert_eq!(depth(&tree, "parent"), MAX_DEPTH);
        let forest = value_of::<Forest>().expect("a shape");
        assert_eq!(field(&forest, "tree").type_, "Tree");
        assert_eq!(depth(field(&forest, "tree"), "children"), MAX_DEPTH - 1);
    }

    #[test]
    fn scalars_and_nothing() {
        assert_eq!(value_of::<u64>(), Some(v("uint64", "uint64", vec![])));
        assert_eq!(value_of::<String>(), Some(v("string", "string", vec![])));
        let list = value_of::<Vec<HelloRequest>>().expect("a shape");
        assert_eq!(list.type_, "[]HelloRequest");
        assert_eq!(list.values, vec![v("name", "string", vec![])]);
        assert_eq!(value_of::<()>(), None);
        assert_eq!(value_of::<serde_json::Value>(), None);
    }

    struct NoSchema;

    // The borrow is the point: it makes `NoShape` (on `&Probe`) the fallback.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn probe_finds_a_shape_only_for_schema_types() {
        #[allow(unused_imports)]
        use super::{NoShape as _, ShapeOf as _};
        assert_eq!(
            (&Probe::<HelloRequest>::new()).shape(),
            value_of::<HelloRequest>()
        );
        assert_eq!((&Probe::<NoSchema>::new()).shape(), None);
    }
}

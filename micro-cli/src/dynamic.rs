//! Dynamic commands, as in micro v3: `micro greeter hello --name=John` calls `Greeter.Hello`
//! of service `greeter` with `{"name":"John"}`. The endpoint and the fields come from the
//! service's registry record, so every running service is a command.
//!
//! - The words after the service name pick the endpoint: `METHOD` (`hello` matches
//!   `Greeter.Hello`; case, `-` and `_` are ignored) or `TRAIT METHOD` when two traits have
//!   the method.
//! - `--field=value` (or `--field value`) sets a request field; `--a_b=value` sets field `b`
//!   of field `a` (`{"a":{"b":"value"}}`) unless the request has a field named `a_b`; a field
//!   given twice, or a `[]T` field given as `x,y`, is a list. Values take the field's type
//!   from the record (`string`, integers, `double`, `bool`); `--flag` alone is `true`.
//! - A request that is not an object (`Greeter.Count` takes a number) is given as one
//!   argument after the method: `micro greeter count 3`.

use crate::commands::ID;
use micro::registry::{Endpoint, Service, Value as Shape};
use micro::{Error, Result};
use serde_json::{Map, Value};
use std::fmt::Write;

/// Folds a name for matching: lowercase, without `-` and `_`.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The endpoint the `words` name among `service`'s endpoints (subscribers left out).
pub fn endpoint<'s>(service: &'s Service, words: &[String]) -> Result<&'s Endpoint> {
    let callable = || {
        service
            .endpoints
            .iter()
            .filter(|e| !e.metadata.contains_key("subscriber"))
    };
    let split = |e: &Endpoint| match e.name.split_once('.') {
        Some((t, m)) => (fold(t), fold(m)),
        None => (String::new(), fold(&e.name)),
    };
    let found: Vec<&Endpoint> = match words {
        [method] => callable().filter(|e| split(e).1 == fold(method)).collect(),
        [trait_, method] => callable()
            .filter(|e| split(e) == (fold(trait_), fold(method)))
            .collect(),
        _ => Vec::new(),
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::not_found(
            ID,
            format!(
                "service {} has no endpoint {:?}; it has: {} (micro {} --help)",
                service.name,
                words.join(" "),
                names(service).join(", "),
                service.name
            ),
        )),
        many => Err(Error::bad_request(
            ID,
            format!(
                "{:?} is ambiguous in service {}: {}; give TRAIT METHOD",
                words.join(" "),
                service.name,
                many.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn names(service: &Service) -> Vec<&str> {
    service
        .endpoints
        .iter()
        .filter(|e| !e.metadata.contains_key("subscriber"))
        .map(|e| e.name.as_str())
        .collect()
}

/// A dynamic command's arguments after the service name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parts {
    /// The words naming the endpoint (`hello`, or `greeter hello`).
    pub words: Vec<String>,
    /// The `--field` flags as `(name, value)`.
    pub fields: Vec<(String, String)>,
    /// A request given as one value.
    pub positional: Option<String>,
}

/// Splits a dynamic command's arguments (after the service name) into its [`Parts`].
pub fn split(args: &[String]) -> Result<Parts> {
    let (mut words, mut flags, mut positional) = (Vec::new(), Vec::new(), None);
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        if let Some(body) = arg.strip_prefix("--") {
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => match iter.peek() {
                    Some(next) if !next.starts_with("--") => {
                        (body.to_string(), iter.next().cloned().unwrap_or_default())
                    }
                    _ => (body.to_string(), "true".to_string()),
                },
            };
            if name.is_empty() {
                return Err(Error::bad_request(ID, format!("{arg:?} names no field")));
            }
            flags.push((name, value));
        } else if flags.is_empty()
            && positional.is_none()
            && words.len() < 2
            && !looks_like_value(arg)
        {
            words.push(arg.clone());
        } else if positional.is_none() {
            positional = Some(arg.clone());
        } else {
            return Err(Error::bad_request(
                ID,
                format!("unexpected argument {arg:?}: give fields as --name=value"),
            ));
        }
    }
    Ok(Parts {
        words,
        fields: flags,
        positional,
    })
}

/// A number, JSON text or quoted text is a request, not an endpoint word.
fn looks_like_value(arg: &str) -> bool {
    arg.starts_with(['{', '[', '"', '-']) || arg.parse::<f64>().is_ok()
}

/// The request of `endpoint` from `--field` flags or one positional value.
pub fn request(
    endpoint: &Endpoint,
    flags: &[(String, String)],
    positional: Option<&str>,
) -> Result<Value> {
    let shape = endpoint.request.as_ref();
    if let Some(text) = positional {
        if !flags.is_empty() {
            return Err(Error::bad_request(
                ID,
                "give the request either as one value or as --field flags, not both",
            ));
        }
        let type_ = shape.map(|s| s.type_.as_str()).unwrap_or("any");
        return typed(text, type_, &endpoint.name);
    }
    let mut out = Map::new();
    for (name, text) in flags {
        set(&mut out, shape, name, text, &endpoint.name)?;
    }
    Ok(Value::Object(out))
}

/// Sets field `name` (maybe `a_b` for nested `a.b`) from `text` in `object`.
fn set(
    object: &mut Map<String, Value>,
    shape: Option<&Shape>,
    name: &str,
    text: &str,
    endpoint: &str,
) -> Result<()> {
    let fields = shape.map(|s| s.values.as_slice()).unwrap_or(&[]);
    if let Some(field) = fields.iter().find(|f| f.name == name) {
        let value = typed_field(text, field, endpoint)?;
        put(object, name, value);
        return Ok(());
    }
    // Nested: the longest known field name that `name` starts with, then `_`.
    let nested = fields
        .iter()
        .filter(|f| !f.values.is_empty())
        .filter_map(|f| {
            name.strip_prefix(f.name.as_str())
                .and_then(|r| r.strip_prefix('_'))
                .map(|rest| (f, rest))
        })
        .max_by_key(|(f, _)| f.name.len());
    if let Some((field, rest)) = nested {
        let child = object
            .entry(field.name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(child) = child else {
            return Err(Error::bad_request(
                ID,
                format!(
                    "field {} is given both as a value and with subfields",
                    field.name
                ),
            ));
        };
        return set(child, Some(field), rest, text, endpoint);
    }
    if fields.is_empty() {
        // No shape to go by: `a_b` nests, values as JSON when they parse.
        if let Some((head, rest)) = name.split_once('_') {
            let child = object
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                return set(child, None, rest, text, endpoint);
            }
        }
        put(object, name, typed(text, "any", endpoint)?);
        return Ok(());
    }
    let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    Err(Error::bad_request(
        ID,
        format!(
            "{endpoint} has no field --{name}; its fields: {}",
            known
                .iter()
                .map(|k| format!("--{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Sets `name`, turning a second value into a list.
fn put(object: &mut Map<String, Value>, name: &str, value: Value) {
    match object.get_mut(name) {
        Some(Value::Array(items)) => items.push(value),
        Some(old) => {
            let first = old.take();
            *old = Value::Array(vec![first, value]);
        }
        None => {
            object.insert(name.to_string(), value);
        }
    }
}

fn typed_field(text: &str, field: &Shape, endpoint: &str) -> Result<Value> {
    match field.type_.strip_prefix("[]") {
        Some(item) => text
            .split(',')
            .map(|part| typed(part.trim(), item, endpoint))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        None => typed(text, &field.type_, endpoint),
    }
}

/// `text` as a value of go-micro type `type_`.
fn typed(text: &str, type_: &str, endpoint: &str) -> Result<Value> {
    let wrong = |expected: &str| {
        Error::bad_request(
            ID,
            format!("{text:?} is not {expected}, as {endpoint} takes here"),
        )
    };
    Ok(match type_ {
        "string" => Value::String(text.to_string()),
        "bool" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        t if t.starts_with("uint") => Value::from(
            text.parse::<u64>()
                .map_err(|_| wrong("a whole number ≥ 0"))?,
        ),
        t if t.starts_with("int") => {
            Value::from(text.parse::<i64>().map_err(|_| wrong("a whole number"))?)
        }
        "double" | "float" => Value::from(text.parse::<f64>().map_err(|_| wrong("a number"))?),
        _ => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
    })
}

/// `micro SERVICE --help`: the endpoints, each with its fields as flags.
pub fn help(service: &Service) -> String {
    let mut out = format!(
        "Usage: micro {} METHOD [--field=value ...]\n\nEndpoints of {} {}:\n",
        service.name,
        service.name,
        if service.version.is_empty() {
            "latest"
        } else {
            &service.version
        }
    );
    for endpoint in &service.endpoints {
        if endpoint.metadata.contains_key("subscriber") {
            continue;
        }
        let method = endpoint.name.rsplit('.').next().unwrap_or(&endpoint.name);
        let stream = if endpoint.metadata.get("stream").is_some_and(|s| s == "true") {
            "  (stream)"
        } else {
            ""
        };
        let _ = writeln!(out, "\n  {}  {}{stream}", kebab(method), endpoint.name);
        match endpoint.request.as_ref() {
            Some(shape) if !shape.values.is_empty() => {
                for field in &shape.values {
                    flag_lines(field, "", &mut out);
                }
            }
            Some(shape) => {
                let _ = writeln!(out, "      VALUE  {}", shape.type_);
            }
            None => {}
        }
    }
    out
}

fn flag_lines(field: &Shape, prefix: &str, out: &mut String) {
    let name = format!("{prefix}{}", field.name);
    if field.values.is_empty() || field.type_.starts_with("[]") {
        let _ = writeln!(out, "      --{name}  {}", field.type_);
    } else {
        for child in &field.values {
            flag_lines(child, &format!("{name}_"), out);
        }
    }
}

/// `SayHello` → `say-hello`.
pub fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(name: &str, type_: &str, values: Vec<Shape>) -> Shape {
        Shape {
            name: name.into(),
            type_: type_.into(),
            values,
        }
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn service() -> Service {
        let request = shape(
            "Req",
            "Req",
            vec![
                shape("name", "string", vec![]),
                shape("user_id", "int64", vec![]),
                shape("to", "Addr", vec![shape("city", "string", vec![])]),
                shape("tags", "[]string", vec![]),
            ],
        );
        Service {
            name: "greeter".into(),
            endpoints: vec![
                Endpoint {
                    name: "Greeter.SayHello".into(),
                    request: Some(request),
                    ..Default::default()
                },
                Endpoint {
                    name: "Greeter.Count".into(),
                    request: Some(shape("uint32", "uint32", vec![])),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn fields_nest_and_take_their_types() {
        let service = service();
        let args = strings(&[
            "say-hello",
            "--name=John",
            "--user_id",
            "7",
            "--to_city=Oslo",
            "--tags=a,b",
        ]);
        let parts = split(&args).unwrap();
        let endpoint = endpoint(&service, &parts.words).unwrap();
        assert_eq!(endpoint.name, "Greeter.SayHello");
        let request = request(endpoint, &parts.fields, parts.positional.as_deref()).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"name": "John", "user_id": 7, "to": {"city": "Oslo"}, "tags": ["a", "b"]})
        );
    }

    #[test]
    fn a_scalar_request_is_one_argument() {
        let service = service();
        let parts = split(&strings(&["greeter", "count", "3"])).unwrap();
        let endpoint = endpoint(&service, &parts.words).unwrap();
        let request = request(endpoint, &parts.fields, parts.positional.as_deref()).unwrap();
        assert_eq!(request, serde_json::json!(3));
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        let service = service();
        let err = endpoint(&service, &strings(&["goodbye"])).unwrap_err();
        assert!(
            err.detail.contains("Greeter.SayHello, Greeter.Count"),
            "{err}"
        );
        let endpoint = endpoint(&service, &strings(&["sayhello"])).unwrap();
        let err = request(endpoint, &[("nmae".into(), "x".into())], None).unwrap_err();
        assert!(err.detail.contains("no field --nmae"), "{err}");
        let err = request(endpoint, &[("user_id".into(), "seven".into())], None).unwrap_err();
        assert!(err.detail.contains("not a whole number"), "{err}");
    }

    #[test]
    fn help_lists_endpoints_and_flags() {
        let text = help(&service());
        assert!(text.contains("say-hello  Greeter.SayHello"), "{text}");
        assert!(text.contains("--to_city  string"), "{text}");
        assert!(text.contains("--tags  []string"), "{text}");
        assert!(text.contains("VALUE  uint32"), "{text}");
    }
}

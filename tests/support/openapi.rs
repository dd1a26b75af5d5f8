//! `docs/openapi.json` and a small JSON Schema check of values against it.
#![allow(dead_code)]

use serde_json::Value;

/// The document, parsed.
pub fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("read docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// Follows a local `$ref` (`#/components/...`), repeatedly.
pub fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("a non-local $ref {r}"));
                v = doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            }
            None => return v,
        }
    }
    panic!("a $ref cycle")
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

/// A small JSON Schema check (type, enum, const, not, required, properties,
/// additionalProperties, items, oneOf, $ref, contentSchema of JSON strings): enough to catch a
/// document that drifted from the server.
pub fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let errors: Vec<String> = alts.iter().filter_map(|s| check(doc, s, v, at).err()).collect();
        if errors.len() == alts.len() {
            return Err(format!("{at}: matches none of oneOf: {errors:?}"));
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => return Err(format!("{at}: expected {t}, got {v}")),
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), v)) => {
            return Err(format!("{at}: expected one of {ts:?}, got {v}"));
        }
        _ => {}
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {values:?}"));
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        return Err(format!("{at}: expected {c}, got {v}"));
    }
    if let Some(map) = v.as_object() {
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = key.as_str().expect("required names are strings");
            if !map.contains_key(key) {
                return Err(format!("{at}: the required field {key} is missing from {v}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (key, value) in map {
            let here = format!("{at}.{key}");
            match (props.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(s), _) => check(doc, s, value, &here)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{here}: not in the schema")),
                (None, Some(s @ Value::Object(_))) => check(doc, s, value, &here)?,
                _ => {}
            }
        }
    }
    if let Some(not) = schema.get("not")
        && check(doc, not, v, at).is_ok()
    {
        return Err(format!("{at}: {v} matches a schema it must not"));
    }
    // A string that holds JSON (an SSE message's `data`): its parsed value against `contentSchema`.
    if let (Some(content), Some(text)) = (schema.get("contentSchema"), v.as_str())
        && schema["contentMediaType"] == "application/json"
    {
        let parsed: Value =
            serde_json::from_str(text).map_err(|e| format!("{at}: not JSON ({e}): {text}"))?;
        check(doc, content, &parsed, &format!("{at}(json)"))?;
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

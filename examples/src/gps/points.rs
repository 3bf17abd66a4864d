//! The GPS point and the validation of a request body: one point or an array of points,
//! checked field by field so that a rejection names every bad point (by index) and field.
//!
//! A body is parsed as plain JSON first (malformed JSON is a 400), then each point is read
//! from its JSON object by hand rather than through `serde`'s derive, so that a missing
//! field, a wrong type and a value out of range are all reported the same way, all at once.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Latitudes accepted, in degrees.
pub const LAT_RANGE: (f64, f64) = (-90.0, 90.0);
/// Longitudes accepted, in degrees.
pub const LON_RANGE: (f64, f64) = (-180.0, 180.0);
/// Altitudes accepted, in metres.
pub const ALTITUDE_RANGE: (f64, f64) = (-1000.0, 20000.0);
/// Longest track or device id accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Most field errors listed in one rejection (the count says how many there were).
pub const MAX_ERRORS: usize = 100;

/// One GPS fix of a track or device: what is queued and stored.
///
/// On the wire (in Redis) it is `{"id", "timestamp", "lat", "lon", "altitude"}`, the
/// timestamp in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The track's id (`track_id`), or for device feeds the device's (`device_id`).
    pub id: String,
    /// When the fix was taken.
    pub timestamp: DateTime<Utc>,
    /// Latitude in degrees, −90 to 90.
    pub lat: f64,
    /// Longitude in degrees, −180 to 180.
    pub lon: f64,
    /// Altitude in metres, −1,000 to 20,000.
    pub altitude: f64,
}

/// What is wrong with one field of one point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The point's index in the request (0 for a body holding one point).
    pub index: usize,
    /// The field, by its JSON name (`track_id`, `timestamp`, `lat`, `lon`, `altitude`);
    /// `point` when the element itself is not an object.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Not JSON at all (HTTP 400).
    Malformed(String),
    /// JSON, but not acceptable points (HTTP 422): `message` says what, `errors` lists the
    /// first [`MAX_ERRORS`] field errors and `error_count` counts them all.
    Invalid {
        /// A summary.
        message: String,
        /// Field errors, in point and field order.
        errors: Vec<FieldError>,
        /// How many field errors there were in all.
        error_count: usize,
    },
}

impl Rejection {
    fn body(message: &str) -> Rejection {
        Rejection::Invalid {
            message: message.to_owned(),
            errors: Vec::new(),
            error_count: 0,
        }
    }
}

/// Reads a request body: one point (a JSON object) or a non-empty array of points. Every
/// point must be valid for any to be accepted.
///
/// # Errors
/// [`Rejection::Malformed`] when the body is not JSON; [`Rejection::Invalid`] when it is
/// neither a point nor a non-empty array of points, or when any point is invalid.
pub fn parse_points(body: &[u8]) -> Result<Vec<Point>, Rejection> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let items = match value {
        Value::Object(_) => vec![value],
        Value::Array(items) if items.is_empty() => {
            return Err(Rejection::body(
                "no points: send a point or a non-empty array of points",
            ))
        }
        Value::Array(items) => items,
        _ => {
            return Err(Rejection::body(
                "expected a point (a JSON object) or an array of points",
            ))
        }
    };
    let mut points = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut error_count = 0;
    let mut bad_points = 0;
    for (index, item) in items.iter().enumerate() {
        match read_point(index, item) {
            Ok(point) => points.push(point),
            Err(mut point_errors) => {
                bad_points += 1;
                error_count += point_errors.len();
                point_errors.truncate(MAX_ERRORS.saturating_sub(errors.len()));
                errors.append(&mut point_errors);
            }
        }
    }
    if error_count == 0 {
        return Ok(points);
    }
    Err(Rejection::Invalid {
        message: format!(
            "{bad_points} of {} point(s) invalid ({error_count} error(s)); nothing was stored",
            items.len()
        ),
        errors,
        error_count,
    })
}

/// Reads the point at `index`, or says everything wrong with it.
fn read_point(index: usize, item: &Value) -> Result<Point, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Value::Object(fields) = item else {
        errors.push(FieldError {
            index,
            field: "point",
            message: format!("expected a JSON object, got {}", kind_of(item)),
        });
        return Err(errors);
    };
    let mut fail = |field: &'static str, message: String| {
        errors.push(FieldError {
            index,
            field,
            message,
        });
    };
    let id = read_id(fields).map_err(|(field, message)| fail(field, message));
    let timestamp = read_timestamp(fields.get("timestamp")).map_err(|m| fail("timestamp", m));
    let lat = read_number(fields.get("lat"), LAT_RANGE).map_err(|m| fail("lat", m));
    let lon = read_number(fields.get("lon"), LON_RANGE).map_err(|m| fail("lon", m));
    let altitude =
        read_number(fields.get("altitude"), ALTITUDE_RANGE).map_err(|m| fail("altitude", m));
    match (id, timestamp, lat, lon, altitude) {
        (Ok(id), Ok(timestamp), Ok(lat), Ok(lon), Ok(altitude)) => Ok(Point {
            id,
            timestamp,
            lat,
            lon,
            altitude,
        }),
        _ => Err(errors),
    }
}

/// `track_id` or `device_id` (one of them): a non-empty string of at most
/// [`MAX_ID_CHARS`] characters without control characters, or a whole number.
fn read_id(fields: &Map<String, Value>) -> Result<String, (&'static str, String)> {
    let (field, value) = match (fields.get("track_id"), fields.get("device_id")) {
        (Some(_), Some(_)) => {
            return Err((
                "device_id",
                "give `track_id` or `device_id`, not both".to_owned(),
            ))
        }
        (Some(value), None) => ("track_id", value),
        (None, Some(value)) => ("device_id", value),
        (None, None) => {
            return Err((
                "track_id",
                "missing: a point needs a `track_id` (or a `device_id`)".to_owned(),
            ))
        }
    };
    let id = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        other => {
            return Err((
                field,
                format!(
                    "must be a string (or a whole number), got {}",
                    kind_of(other)
                ),
            ))
        }
    };
    if id.trim().is_empty() {
        return Err((field, "must not be empty".to_owned()));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err((field, format!("longer than {MAX_ID_CHARS} characters")));
    }
    if id.chars().any(char::is_control) {
        return Err((field, "must not contain control characters".to_owned()));
    }
    Ok(id)
}

/// An RFC 3339 timestamp from 1970 to 2199.
fn read_timestamp(value: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let text = match value {
        None => return Err("missing".to_owned()),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(format!(
                "must be an RFC 3339 string (e.g. 2025-06-08T10:30:00Z), got {}",
                kind_of(other)
            ))
        }
    };
    let timestamp = DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 timestamp (e.g. 2025-06-08T10:30:00Z): {e}")
        })?
        .with_timezone(&Utc);
    let (earliest, latest) = timestamp_range();
    if timestamp < earliest || timestamp >= latest {
        return Err(format!(
            "{text} is out of range: must be from {} to before {}",
            earliest.to_rfc3339(),
            latest.to_rfc3339()
        ));
    }
    Ok(timestamp)
}

/// Timestamps accepted: from 1970 to before 2200 (PostgreSQL's `timestamptz` would take
/// more, but such a point is surely a bug of its sender).
fn timestamp_range() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default(),
    )
}

/// A finite number within `(min, max)`, bounds included.
fn read_number(value: Option<&Value>, (min, max): (f64, f64)) -> Result<f64, String> {
    let n = match value {
        None => return Err("missing".to_owned()),
        Some(Value::Number(n)) => n.as_f64().filter(|n| n.is_finite()),
        Some(other) => return Err(format!("must be a number, got {}", kind_of(other))),
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("{n} is out of range: must be from {min} to {max}")),
        None => Err("must be a finite number".to_owned()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"track_id": "t1", "timestamp": "2025-06-08T10:30:00Z",
               "lat": 45.5, "lon": 6.25, "altitude": 1200})
    }

    fn invalid(body: &Value) -> Vec<(usize, &'static str)> {
        match parse_points(body.to_string().as_bytes()) {
            Err(Rejection::Invalid { errors, .. }) => {
                errors.iter().map(|e| (e.index, e.field)).collect()
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn reads_one_point_or_many() {
        let one = parse_points(good().to_string().as_bytes()).expect("one point");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "t1");
        assert_eq!(one[0].altitude, 1200.0);
        assert_eq!(one[0].timestamp.to_rfc3339(), "2025-06-08T10:30:00+00:00");
        let mut device = good();
        device.as_object_mut().unwrap().remove("track_id");
        device["device_id"] = json!(4711);
        device["timestamp"] = json!("2025-06-08T12:30:00+02:00");
        let many = parse_points(json!([good(), device]).to_string().as_bytes()).expect("two");
        assert_eq!(many[1].id, "4711");
        assert_eq!(many[1].timestamp, many[0].timestamp);
    }

    #[test]
    fn names_every_bad_point_and_field() {
        let mut missing = good();
        missing.as_object_mut().unwrap().remove("altitude");
        let mut late = good();
        late["timestamp"] = json!("yesterday");
        let mut far = good();
        far["lat"] = json!(90.5);
        far["lon"] = json!(-181);
        let mut typed = good();
        typed["altitude"] = json!("1200");
        typed["track_id"] = json!(true);
        let body = json!([good(), missing, late, far, typed, 7]);
        assert_eq!(
            invalid(&body),
            [
                (1, "altitude"),
                (2, "timestamp"),
                (3, "lat"),
                (3, "lon"),
                (4, "track_id"),
                (4, "altitude"),
                (5, "point"),
            ]
        );
    }

    #[test]
    fn checks_ids_and_timestamps() {
        let mut none = good();
        none.as_object_mut().unwrap().remove("track_id");
        assert_eq!(invalid(&none), [(0, "track_id")]);
        let mut both = good();
        both["device_id"] = json!("d");
        assert_eq!(invalid(&both), [(0, "device_id")]);
        let mut nul = good();
        nul["track_id"] = json!("a\u{0}b");
        assert_eq!(invalid(&nul), [(0, "track_id")]);
        let mut ancient = good();
        ancient["timestamp"] = json!("1969-12-31T23:59:59Z");
        assert_eq!(invalid(&ancient), [(0, "timestamp")]);
        let mut no_zone = good();
        no_zone["timestamp"] = json!("2025-06-08T10:30:00");
        assert_eq!(invalid(&no_zone), [(0, "timestamp")]);
    }

    #[test]
    fn refuses_bodies_that_hold_no_points() {
        assert!(matches!(
            parse_points(b"{\"lat\": "),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(invalid(&json!([])), []);
        assert_eq!(invalid(&json!("point")), []);
    }

    #[test]
    fn caps_the_list_of_errors() {
        let body = Value::Array(vec![json!({}); 200]);
        match parse_points(body.to_string().as_bytes()) {
            Err(Rejection::Invalid {
                errors,
                error_count,
                ..
            }) => {
                assert_eq!(errors.len(), MAX_ERRORS);
                assert_eq!(error_count, 200 * 5);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}

package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/placement"
)

// maxBodyBytes bounds request bodies: placement requests are small, and a
// bound keeps a bad client from making the server buffer gigabytes.
const maxBodyBytes = 1 << 20

// decodeJSON reads the request body into v strictly: unknown fields, wrong
// types, trailing data and bodies over maxBodyBytes are refused with a 4xx
// Error naming the field at fault.
func decodeJSON(c echo.Context, v any) error {
	r := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes)}
		}
		return invalidArgument("", "reading request body: %v", err)
	}
	// The Content-Type is not checked: the body is JSON whatever it says,
	// so that curl -d (form-urlencoded by default) works as documented.
	return decodeBody(body, v)
}

// decodeNoBody is for endpoints that take no body (confirm, release,
// finish): an empty body or an empty JSON object is accepted, anything else
// is refused, so that a client sending fields it believes matter learns
// that they do not, before any state changes.
func decodeNoBody(c echo.Context) error {
	var none struct{}
	if err := decodeOptionalJSON(c, &none); err != nil {
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
			apiErr.Message = "this endpoint takes no body (send none, or {}): " + apiErr.Message
			if apiErr.Field == "" {
				apiErr.Field = "body"
			}
		}
		return err
	}
	return nil
}

// decodeBody is decodeJSON's pure half, separated so it can be fuzzed.
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalidArgument("", "request body is empty, expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(body, reflect.TypeOf(v), err)
	}
	if dec.More() {
		return invalidArgument("", "malformed JSON: unexpected data after the top-level object at byte %d", dec.InputOffset())
	}
	return nil
}

func decodeError(body []byte, t reflect.Type, err error) *Error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		apiErr    *Error
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &syntaxErr):
		return invalidArgument("", "malformed JSON at byte %d: %s", syntaxErr.Offset, strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidArgument("", "malformed JSON: unexpected end of input")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			// Raised inside a domain UnmarshalJSON, which does not know
			// where it is.
			field = errorPath(body, t)
		}
		if field == "" {
			// Top-level type mismatch (e.g. an array instead of an object).
			return invalidArgument("", "expected a JSON object, got %s", typeErr.Value)
		}
		return invalidArgument(field, "%s: expected %s, got %s", field, jsonTypeName(typeErr.Type), typeErr.Value)
	}
	// Unknown fields and errors from the domain's own UnmarshalJSON
	// (resource strings with bad units…) do not carry the field path:
	// find it by decoding the body field by field.
	field := errorPath(body, t)
	msg := strings.TrimPrefix(err.Error(), "json: ")
	var fieldErr *placement.FieldError
	if errors.As(err, &fieldErr) {
		msg = fieldErr.Err.Error()
		if field == "" {
			field = fieldErr.Field
		}
	}
	if strings.HasPrefix(msg, "unknown field ") {
		hint := ""
		if i := strings.Index(msg, " ("); i >= 0 {
			hint = msg[i:]
		}
		return invalidArgument(field, "unknown field %s%s", strconv.Quote(field), hint)
	}
	if field != "" && !strings.Contains(msg, field) {
		msg = field + ": " + msg
	}
	return invalidArgument(field, "%s", msg)
}

// errorPath returns the dotted JSON path of the first value in body that
// cannot be decoded into t (an unknown key or a value its type refuses), or
// "" when it cannot tell.
func errorPath(body []byte, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			return ""
		}
		// Sorted, so that with several bad fields the answer is stable.
		for _, key := range slices.Sorted(maps.Keys(fields)) {
			raw := fields[key]
			ft, ok := fieldType(t, key)
			if !ok {
				return key
			}
			if decodeStrict(raw, ft) != nil {
				if sub := errorPath(raw, ft); sub != "" {
					return key + "." + sub
				}
				return key
			}
		}
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil {
			return ""
		}
		for i, raw := range items {
			if decodeStrict(raw, t.Elem()) != nil {
				if sub := errorPath(raw, t.Elem()); sub != "" {
					return fmt.Sprintf("[%d].%s", i, sub)
				}
				return fmt.Sprintf("[%d]", i)
			}
		}
	}
	return ""
}

func decodeStrict(raw json.RawMessage, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(reflect.New(t).Interface())
}

// fieldType finds the type of the struct field key decodes into, with
// encoding/json's rules: exact tag name first, then case-insensitive.
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f.Type, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = f.Type
		}
	}
	return fold, fold != nil
}

// jsonTypeName names a Go type the way a JSON client thinks of it.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

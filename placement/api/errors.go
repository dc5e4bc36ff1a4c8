package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error codes of the JSON error model (docs/placement/api.md, "Errors").
const (
	CodeInvalidArgument  = "invalid_argument"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnprocessable    = "unprocessable"
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodeQuotaExceeded    = "quota_exceeded"
	// CodeQuotaUsageUnknown: the usage of some server of the organization
	// is not known, so its quota cannot be checked (503: retry later).
	CodeQuotaUsageUnknown = "quota_usage_unknown"
	CodeConflict          = "conflict"
	CodeTooLarge          = "request_too_large"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
)

// Error is an API error: an HTTP status and the body
// {"error": {"code": …, "message": …, "field": …}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the JSON path of the offending input (e.g.
	// "requirements.memory"), when one field is to blame.
	Field string `json:"field,omitempty"`
	// Details carries structured context some errors have (e.g. the quota
	// violations behind a 403).
	Details any `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// errorBody is the envelope every error is sent in.
type errorBody struct {
	Error *Error `json:"error"`
}

func invalidArgument(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...), Field: field}
}

func notFound(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...), Field: field}
}

func unprocessable(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUnprocessable, Message: fmt.Sprintf(format, args...), Field: field}
}

func unavailable(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error()}
}

// errorHandler replaces echo's default so that every error — including
// echo's own 404/405/413 for unknown routes — answers in the JSON model.
// Unexpected errors become 500 with their message logged, never a panic.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr := toAPIError(err)
		if apiErr.Status >= 500 {
			logger.Error("request failed", "method", c.Request().Method, "path", c.Path(), "status", apiErr.Status, "err", err)
		}
		var sendErr error
		if c.Request().Method == http.MethodHead {
			sendErr = c.NoContent(apiErr.Status)
		} else {
			sendErr = c.JSON(apiErr.Status, errorBody{Error: apiErr})
		}
		if sendErr != nil {
			logger.Debug("sending error response", "err", sendErr)
		}
	}
}

func toAPIError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) {
		msg := http.StatusText(httpErr.Code)
		if m, ok := httpErr.Message.(string); ok && m != "" {
			msg = m
		}
		return &Error{Status: httpErr.Code, Code: codeForStatus(httpErr.Code), Message: lowerFirst(msg)}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnprocessableEntity:
		return CodeUnprocessable
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// CodeInvalidPolicy is /-/reload's error (422) when the placement policy
// file is refused; the previous policy stays and the error's field is the
// policy path at fault (e.g. "scoring.strategy").
const CodeInvalidPolicy = "invalid_policy"

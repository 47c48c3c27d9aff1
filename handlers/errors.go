package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/rules"
)

// Error is an error with a status, a stable code and a message safe to show the caller.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, in seconds, is sent as a Retry-After header when set.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *Error {
	e := newError(http.StatusUnprocessableEntity, "invalid", format, args...)
	e.Field = field
	return e
}

func badRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "bad_request", format, args...)
}

// AsError maps any error a handler returns to a safe *Error; ok is false for unexpected
// errors, which the caller logs and answers with 500.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var rf *rules.FieldError
	if errors.As(err, &rf) {
		return invalid(rf.Field, "%s", rf.Message), true
	}
	var cf *connectors.FieldError
	if errors.As(err, &cf) {
		return invalid(cf.Field, "%s", cf.Message), true
	}
	switch {
	case errors.Is(err, db.ErrNotFound):
		return newError(http.StatusNotFound, "not_found", "no such resource in this workspace"), true
	case errors.Is(err, db.ErrIdempotencyMismatch):
		return newError(http.StatusConflict, "idempotency_mismatch", "this Idempotency-Key was used with a different request in the last 24 hours"), true
	case errors.Is(err, db.ErrConflict):
		return newError(http.StatusConflict, "conflict", "the request conflicts with the current state"), true
	case db.IsUnavailable(err):
		e := newError(http.StatusServiceUnavailable, "unavailable", "the database is unavailable; retry shortly")
		e.RetryAfter = 2
		return e, true
	}
	return nil, false
}

// fieldMessage is the message of a validation error without its field name, for
// re-labelling it under the caller's field.
func fieldMessage(err error) string {
	if e, ok := AsError(err); ok {
		return e.Message
	}
	return err.Error()
}

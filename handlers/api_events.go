package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fanout-dev/fanout/db"
	"github.com/labstack/echo/v4"
)

const maxBatch = 100

var eventTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,199}$`)

// eventInput is one event as posted, before it is stored.
type eventInput struct {
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	ID             string          `json:"id,omitempty"`
	OccurredAt     string          `json:"occurred_at,omitempty"`
	occurredAt     time.Time       // OccurredAt parsed, or the CloudEvent's time
	Source         string          `json:"-"`
	IdempotencyKey string          `json:"-"`
	Hash           string          `json:"-"`
}

// IngestEvent stores one event and answers 202 once it is durable. It accepts plain
// Fanout events and CloudEvents in structured, binary and batched mode.
func (h *Handlers) IngestEvent(c echo.Context) error {
	body, err := h.readBody(c)
	if err != nil {
		return err
	}
	if mediaType(c.Request()) == cloudEventsBatch {
		return h.ingestItems(c, body)
	}
	in, err := parseEventRequest(c.Request(), body)
	if err != nil {
		return err
	}
	if key := c.Request().Header.Get("Idempotency-Key"); key != "" {
		if len(key) > 255 {
			return invalid("Idempotency-Key", "must be at most 255 characters")
		}
		in.IdempotencyKey = "key:" + key
	}
	ev, dup, err := h.storeEvent(c, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]any{"id": ev.ID, "duplicate": dup, "received_at": ev.ReceivedAt})
}

// IngestBatch stores up to 100 events: {"events": [...]}, or a CloudEvents batch
// (application/cloudevents-batch+json). Valid items are stored even when others are
// not: 202 when all were accepted, 207 with a result per item otherwise.
func (h *Handlers) IngestBatch(c echo.Context) error {
	body, err := h.readBody(c)
	if err != nil {
		return err
	}
	return h.ingestItems(c, body)
}

func (h *Handlers) ingestItems(c echo.Context, body []byte) error {
	items, parse, err := batchItems(c.Request(), body)
	if err != nil {
		return err
	}
	type itemResult struct {
		Index  int    `json:"index"`
		Status int    `json:"status"`
		ID     string `json:"id,omitempty"`
		Error  *Error `json:"error,omitempty"`
	}
	results := make([]itemResult, len(items))
	allOK := true
	for i, raw := range items {
		results[i] = itemResult{Index: i, Status: http.StatusAccepted}
		ev, err := h.batchItem(c, raw, parse)
		if err != nil {
			apiErr, ok := AsError(err)
			if !ok {
				// Earlier items are already stored: answer per item, never a bare 500.
				h.Log.Error("batch item failed", "index", i, "err", err)
				apiErr = newError(http.StatusInternalServerError, "internal", "this event could not be stored; retry it")
			}
			results[i].Status, results[i].Error, allOK = apiErr.Status, apiErr, false
			continue
		}
		results[i].ID = ev.ID
	}
	status := http.StatusAccepted
	if !allOK {
		status = http.StatusMultiStatus
	}
	return c.JSON(status, map[string]any{"data": results})
}

const cloudEventsBatch = "application/cloudevents-batch+json"

// batchItems splits a batch body into its events and says how to parse each.
func batchItems(r *http.Request, body []byte) ([]json.RawMessage, func([]byte) (*eventInput, error), error) {
	var items []json.RawMessage
	parse := parseEvent
	switch mediaType(r) {
	case cloudEventsBatch:
		if err := decodeStrict(body, &items); err != nil {
			return nil, nil, err
		}
		parse = parseStructuredCloudEvent
	case "application/json":
		var batch struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := decodeStrict(body, &batch); err != nil {
			return nil, nil, err
		}
		if batch.Events == nil {
			return nil, nil, invalid("events", "is required: a list of events")
		}
		items = batch.Events
	default:
		return nil, nil, unsupportedMediaType()
	}
	if len(items) > maxBatch {
		return nil, nil, invalid("events", "at most %d events per batch, got %d", maxBatch, len(items))
	}
	return items, parse, nil
}

func mediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return mt
}

func (h *Handlers) batchItem(c echo.Context, raw json.RawMessage, parse func([]byte) (*eventInput, error)) (*db.Event, error) {
	in, err := parse(raw)
	if err != nil {
		return nil, err
	}
	ev, _, err := h.storeEvent(c, in)
	return ev, err
}

// readBody reads the request body up to the configured limit: 413 beyond it, without
// reading more than the limit.
func (h *Handlers) readBody(c echo.Context) ([]byte, error) {
	return readLimited(c, h.MaxEventBytes)
}

func readLimited(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, badRequest("could not read the request body")
	}
	return body, nil
}

func tooLarge(limit int64) *Error {
	return newError(http.StatusRequestEntityTooLarge, "too_large", "the request body exceeds %d bytes", limit)
}

// storeEvent writes the event row, then hands it to the router. The 202 that follows
// means the row is committed; a failed enqueue is repaired by the reconciler.
func (h *Handlers) storeEvent(c echo.Context, in *eventInput) (*db.Event, bool, error) {
	ctx := c.Request().Context()
	ev := &db.Event{
		WorkspaceID: workspaceID(c), Type: in.Type, Data: in.Data, Source: in.Source,
		ExternalID: in.ID, RequestHash: in.Hash,
	}
	if !in.occurredAt.IsZero() {
		ev.OccurredAt = in.occurredAt.UTC()
	}
	if in.IdempotencyKey != "" {
		ev.IdempotencyKey = &in.IdempotencyKey
	}
	stored, dup, err := h.Store.InsertEvent(ctx, ev)
	if err != nil {
		return nil, false, err
	}
	if !dup {
		h.Metrics.EventsIngested.Inc()
		if err := h.Queue.EnqueueRoute(ctx, stored.WorkspaceID, stored.ID); err != nil {
			h.Log.Warn("enqueue route; the reconciler will retry", "event_id", stored.ID, "err", err)
		}
	}
	return stored, dup, nil
}

// parseEventRequest reads a plain event or a CloudEvent, by content type and headers.
func parseEventRequest(r *http.Request, body []byte) (*eventInput, error) {
	if r.Header.Get("ce-specversion") != "" || r.Header.Get("ce-id") != "" {
		return parseBinaryCloudEvent(r.Header, body)
	}
	switch mediaType(r) {
	case "application/cloudevents+json":
		return parseStructuredCloudEvent(body)
	case "application/json":
		return parseEvent(body)
	}
	return nil, unsupportedMediaType()
}

func unsupportedMediaType() *Error {
	return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"send Content-Type: application/json (or application/cloudevents+json, application/cloudevents-batch+json, or a binary-mode CloudEvent)")
}

func requireJSON(r *http.Request) error {
	if mediaType(r) != "application/json" {
		return unsupportedMediaType()
	}
	return nil
}

// parseEvent validates a plain Fanout event: {"type", "data", "id"?, "occurred_at"?}.
func parseEvent(body []byte) (*eventInput, error) {
	var in eventInput
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	if in.ID != "" {
		in.IdempotencyKey = "id:" + in.ID
	}
	in.Hash = hashBody(body)
	return &in, validateEvent(&in)
}

func validateEvent(in *eventInput) error {
	switch {
	case in.Type == "":
		return invalid("type", "is required")
	case !eventTypeRE.MatchString(in.Type):
		return invalid("type", "must be 1-200 letters, digits and . _ - : / (e.g. lead.created)")
	case len(in.ID) > 200:
		return invalid("id", "must be at most 200 characters")
	case len(in.Data) == 0:
		return invalid("data", "is required: a JSON object")
	case !isJSONObject(in.Data):
		return invalid("data", "must be a JSON object")
	}
	if in.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, in.OccurredAt)
		if err != nil {
			return invalid("occurred_at", "must be an RFC 3339 timestamp (2026-01-02T15:04:05Z)")
		}
		in.occurredAt = t
	}
	return nil
}

// decodeStrict decodes one JSON value: invalid UTF-8, malformed JSON, trailing data and
// unknown fields are refused with a message that names the problem.
func decodeStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		return badRequest("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &ute):
			return invalid(ute.Field, "must be a JSON %s", jsonKind(ute.Type.Kind().String()))
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("the body is empty or truncated JSON")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(field, "is not a known field")
		}
		return badRequest("malformed JSON: %v", err)
	}
	if dec.More() {
		return badRequest("malformed JSON: unexpected data after the first value")
	}
	if hasNUL(reflect.ValueOf(v)) {
		return badRequest("strings must not contain NUL (\\u0000)")
	}
	return nil
}

// hasNUL reports whether any decoded string in v holds a NUL character, which neither
// database stores. Raw JSON (event data) is kept as text and may contain \u0000 escapes.
func hasNUL(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return strings.IndexByte(v.String(), 0) >= 0
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && hasNUL(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && hasNUL(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return false // json.RawMessage
		}
		for i := range v.Len() {
			if hasNUL(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if hasNUL(it.Key()) || hasNUL(it.Value()) {
				return true
			}
		}
	}
	return false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	}
	return fmt.Sprintf("value of another type (%s)", goKind)
}

func isJSONObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}

func hashBody(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

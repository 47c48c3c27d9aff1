package handlers

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CloudEvents 1.0 (https://github.com/cloudevents/spec): type, id and source are required,
// data becomes the event's data, and (source, id) identifies an event for deduplication.

// parseStructuredCloudEvent reads application/cloudevents+json.
func parseStructuredCloudEvent(body []byte) (*eventInput, error) {
	var ce map[string]json.RawMessage
	if err := decodeStrict(body, &ce); err != nil {
		return nil, err
	}
	attr := func(name string) (string, error) {
		raw, ok := ce[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid(name, "must be a string")
		}
		return s, nil
	}
	var a ceAttrs
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"specversion", &a.specversion}, {"type", &a.typ}, {"id", &a.id}, {"source", &a.source}, {"time", &a.time}, {"datacontenttype", &a.contentType}} {
		if *f.dst, err = attr(f.name); err != nil {
			return nil, err
		}
	}
	data := ce["data"]
	if _, ok := ce["data_base64"]; ok && data == nil {
		return nil, invalid("data_base64", "binary data is not supported; send a JSON object as data")
	}
	return a.event(data, hashBody(body))
}

// parseBinaryCloudEvent reads a binary-mode CloudEvent: attributes in ce-* headers, the
// body is the data.
func parseBinaryCloudEvent(h http.Header, body []byte) (*eventInput, error) {
	a := ceAttrs{
		specversion: h.Get("ce-specversion"), typ: h.Get("ce-type"), id: h.Get("ce-id"),
		source: h.Get("ce-source"), time: h.Get("ce-time"),
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "application/json" && mt != "" {
		return nil, newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"binary-mode CloudEvents must carry JSON data (Content-Type: application/json)")
	}
	if err := decodeStrict(body, new(json.RawMessage)); err != nil {
		return nil, err
	}
	return a.event(body, hashBody(append([]byte(a.typ+"\x00"+a.source+"\x00"+a.id+"\x00"), body...)))
}

type ceAttrs struct {
	specversion, typ, id, source, time, contentType string
}

func (a ceAttrs) event(data json.RawMessage, hash string) (*eventInput, error) {
	if strings.IndexByte(a.specversion+a.typ+a.id+a.source+a.time, 0) >= 0 {
		return nil, badRequest("strings must not contain NUL (\\u0000)")
	}
	switch {
	case a.specversion == "":
		return nil, invalid("specversion", "is required (CloudEvents 1.0)")
	case a.specversion != "1.0":
		return nil, invalid("specversion", "only CloudEvents 1.0 is supported")
	case a.id == "":
		return nil, invalid("id", "is required")
	case a.source == "":
		return nil, invalid("source", "is required")
	case len(a.source) > 500:
		return nil, invalid("source", "must be at most 500 characters")
	}
	in := &eventInput{
		Type: a.typ, Data: data, ID: a.id, Source: a.source, Hash: hash,
		// The source's length keeps (source, id) pairs apart without a separator byte.
		IdempotencyKey: "ce:" + strconv.Itoa(len(a.source)) + ":" + a.source + a.id,
	}
	if a.time != "" {
		t, err := time.Parse(time.RFC3339Nano, a.time)
		if err != nil {
			return nil, invalid("time", "must be an RFC 3339 timestamp")
		}
		in.occurredAt = t
	}
	return in, validateEvent(in)
}

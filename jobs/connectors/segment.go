package connectors

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Segment sends track calls to Segment's HTTP Tracking API or any compatible collector
// (RudderStack, Jitsu, …) (VENDOR_APIS.md §5). The messageId is the delivery id, stable
// across retries, on which Segment drops duplicates.
//
// Config: {"api_base": "https://events.eu1.segmentapis.com"} (optional; EU workspaces and
// compatible collectors need it: events sent by an EU workspace to the US host are
// silently dropped). Credentials: write_key, sent as the Basic user name.
type Segment struct {
	policy ClientOptions
}

// NewSegment returns the Segment connector.
func NewSegment(opts ClientOptions) *Segment { return &Segment{policy: opts} }

const (
	segmentDefaultBase = "https://api.segment.io"
	segmentMaxEvent    = 32 << 10 // §5.5: 32 KB per call, else 400
)

// Kind returns "segment".
func (*Segment) Kind() string { return "segment" }

// Info describes the Segment kind.
func (*Segment) Info() Info {
	return Info{
		Kind:             "segment",
		DisplayName:      "Segment",
		AuthModes:        []AuthMode{AuthAPIKey},
		CredentialFields: []string{CredWriteKey},
		Actions: []Action{{
			Name:        "segment.track",
			DisplayName: "Track an event",
			Fields: []Field{
				{Name: "event", Type: "string", Required: true, Help: `The event name, e.g. "Lead Created".`},
				{Name: "userId", Type: "string", Help: "Map userId or anonymousId: Segment drops events with neither."},
				{Name: "anonymousId", Type: "string"},
				{Name: "properties", Type: "object", Help: "properties.<name> for each property."},
				{Name: "context", Type: "object", Help: "Segment Spec context fields (context.ip, …)."},
				{Name: "integrations", Type: "object"},
				{Name: "timestamp", Type: "string", Help: "ISO 8601; defaults to the event's occurred_at."},
			},
		}},
	}
}

type segmentConfig struct {
	APIBase string `json:"api_base,omitempty"`
}

func parseSegmentConfig(raw json.RawMessage) (segmentConfig, string, error) {
	var cfg segmentConfig
	if err := decodeConfig(raw, &cfg); err != nil {
		return cfg, "", err
	}
	base, err := apiBase(cfg.APIBase, segmentDefaultBase)
	return cfg, base, err
}

// ValidateConfig checks api_base under the network policy and that a write key is present.
func (s *Segment) ValidateConfig(config json.RawMessage, creds Credentials) error {
	cfg, _, err := parseSegmentConfig(config)
	if err != nil {
		return err
	}
	if err := checkAPIBase(s.policy, cfg.APIBase); err != nil {
		return err
	}
	if creds[CredWriteKey] == "" {
		return &FieldError{Field: "credentials." + CredWriteKey, Message: "is required"}
	}
	return nil
}

// Send posts one track call to /v1/track.
func (s *Segment) Send(ctx context.Context, req *Request) Result {
	_, base, err := parseSegmentConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	key := req.Credentials[CredWriteKey]
	if key == "" {
		return configFailure(&FieldError{Field: "credentials." + CredWriteKey, Message: "is required"})
	}
	call, err := segmentTrack(req)
	if err != nil {
		return mappingFailure(err)
	}
	if b, _ := json.Marshal(call); len(b) > segmentMaxEvent {
		return mappingFailure(fmt.Errorf("the track call is %d bytes; Segment accepts at most 32 KB", len(b)))
	}
	v := newVendorHTTP(req)
	res, _, hdr := v.do(ctx, http.MethodPost, base+"/v1/track", call, segmentAuth(key))
	return segmentClassify(res, hdr)
}

// Test posts an empty batch: harmless (no event is recorded) and it proves the collector
// answers. Segment accepts any write key, so a wrong key only shows in its debugger.
func (s *Segment) Test(ctx context.Context, req *Request) Result {
	_, base, err := parseSegmentConfig(req.Config)
	if err != nil {
		return configFailure(err)
	}
	v := newVendorHTTP(req)
	res, _, hdr := v.do(ctx, http.MethodPost, base+"/v1/batch", map[string]any{"batch": []any{}}, segmentAuth(req.Credentials[CredWriteKey]))
	return segmentClassify(res, hdr)
}

func segmentAuth(writeKey string) http.Header {
	// §5.2: the write key is the user name and the password is empty; the colon stays.
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":"))}}
}

// segmentTrack builds the track call: the mapped fields, type, messageId = delivery id,
// and the event's time when no timestamp is mapped.
func segmentTrack(req *Request) (map[string]any, error) {
	m, err := decodePayload(req.Payload)
	if err != nil {
		return nil, err
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	event, err := stringField(m, "event")
	if err != nil {
		return nil, err
	}
	if event == "" {
		return nil, fmt.Errorf("event is empty")
	}
	m["event"] = event
	userID, err := stringField(m, "userId")
	if err != nil {
		return nil, err
	}
	anonID, err := stringField(m, "anonymousId")
	if err != nil {
		return nil, err
	}
	if userID == "" && anonID == "" {
		return nil, fmt.Errorf("map userId or anonymousId: Segment drops track calls with neither")
	}
	for k, s := range map[string]string{"userId": userID, "anonymousId": anonID} {
		if s == "" {
			delete(m, k)
		} else {
			m[k] = s
		}
	}
	for _, k := range []string{"properties", "context", "integrations"} {
		if v, ok := m[k]; ok {
			if _, isObj := v.(map[string]any); !isObj {
				return nil, fmt.Errorf("%s must be an object", k)
			}
		}
	}
	if _, ok := m["timestamp"]; !ok && !req.Event.OccurredAt.IsZero() {
		m["timestamp"] = req.Event.OccurredAt.UTC().Format(time.RFC3339Nano)
	}
	m["type"] = "track"
	if len(req.DeliveryID) >= 100 {
		return nil, fmt.Errorf("the delivery id is too long for a messageId")
	}
	m["messageId"] = req.DeliveryID
	return m, nil
}

// segmentClassify: Segment answers 200 to nearly everything (§5.5); 429 carries
// Retry-After or X-RateLimit-Reset (seconds); 401 and 403 mean the write key was refused.
func segmentClassify(res Result, hdr http.Header) Result {
	switch res.StatusCode {
	case http.StatusTooManyRequests:
		res.RetryAfter = rateLimitWait(hdr, time.Now())
	case http.StatusUnauthorized, http.StatusForbidden:
		res.Outcome, res.ErrorClass = AuthFailed, ClassAuth
	}
	return res
}

package connectors_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fanout-dev/fanout/jobs/connectors"
	"github.com/fanout-dev/fanout/jobs/connectors/fakes"
)

func segmentRequest(f *fakes.Segment, payload string) *connectors.Request {
	return &connectors.Request{
		DeliveryID: "dlv_01JSEGMENT", Action: "segment.track", Payload: json.RawMessage(payload),
		Config: raw(map[string]string{"api_base": f.URL}), Credentials: connectors.Credentials{connectors.CredWriteKey: "wk_live_123"},
	}
}

func TestSegmentTrack(t *testing.T) {
	t.Parallel()
	f := fakes.NewSegment(t, "wk_live_123")
	c := connectors.NewSegment(loopback)
	r := send(t, c, segmentRequest(f, `{"event":"Lead Created","userId":"u_1","properties":{"plan":"pro","seats":3}}`))
	expectOutcome(t, r, connectors.Succeeded, "")
	calls := f.Calls(http.MethodPost, "/v1/track")
	if len(calls) != 1 {
		t.Fatalf("%d track calls", len(calls))
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("wk_live_123:")); calls[0].Header.Get("Authorization") != want {
		t.Errorf("Authorization %q, want %q", calls[0].Header.Get("Authorization"), want)
	}
	jsonEqual(t, calls[0].Body, `{"type":"track","event":"Lead Created","userId":"u_1","properties":{"plan":"pro","seats":3},
		"messageId":"dlv_01JSEGMENT","timestamp":"2026-03-04T05:06:07Z"}`)
	noSecrets(t, r, "wk_live_123")

	// A retry carries the same messageId, on which Segment deduplicates.
	expectOutcome(t, send(t, c, segmentRequest(f, `{"event":"Lead Created","userId":"u_1"}`)), connectors.Succeeded, "")
	acc := f.Accepted()
	if len(acc) != 2 || acc[0].Duplicate || !acc[1].Duplicate || len(f.Dropped()) != 0 {
		t.Errorf("accepted %+v dropped %v", acc, f.Dropped())
	}
}

func TestSegmentFailures(t *testing.T) {
	t.Parallel()
	f := fakes.NewSegment(t, "wk_live_123")
	c := connectors.NewSegment(loopback)
	t.Run("no user", func(t *testing.T) {
		expectOutcome(t, send(t, c, segmentRequest(f, `{"event":"x","properties":{}}`)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("no event", func(t *testing.T) {
		expectOutcome(t, send(t, c, segmentRequest(f, `{"anonymousId":"a"}`)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("too big", func(t *testing.T) {
		big := strings.Repeat("x", fakes.SegmentMaxEvent)
		expectOutcome(t, send(t, c, segmentRequest(f, `{"event":"x","userId":"u","properties":{"blob":"`+big+`"}}`)), connectors.Permanent, connectors.ClassMapping)
	})
	t.Run("429", func(t *testing.T) {
		f.RateLimit(1, 4)
		r := send(t, c, segmentRequest(f, `{"event":"x","userId":"u"}`))
		expectOutcome(t, r, connectors.RateLimited, connectors.ClassRateLimited)
		if r.RetryAfter != 4*time.Second {
			t.Errorf("RetryAfter %s", r.RetryAfter)
		}
	})
	if n := len(f.Calls(http.MethodPost, "/v1/track")); n != 1 {
		t.Errorf("%d calls reached the collector; only the rate-limited one should", n)
	}
	t.Run("Test posts an empty batch", func(t *testing.T) {
		req := segmentRequest(f, `{}`)
		req.HTTP = loopbackClient
		expectOutcome(t, c.Test(t.Context(), req), connectors.Succeeded, "")
		if b := f.Calls(http.MethodPost, "/v1/batch"); len(b) != 1 || string(b[0].Body) != `{"batch":[]}` {
			t.Errorf("batch calls %+v", b)
		}
		if len(f.Accepted()) != 0 {
			t.Error("the test recorded an event")
		}
	})
}

func TestSegmentValidateConfig(t *testing.T) {
	t.Parallel()
	c := connectors.NewSegment(connectors.ClientOptions{})
	key := connectors.Credentials{connectors.CredWriteKey: "k"}
	if err := c.ValidateConfig(raw(map[string]string{"api_base": "https://93.184.215.14:8443"}), key); err != nil {
		t.Error(err)
	}
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"api_base": "https://93.184.215.14/v1"}), key), "config.api_base")
	fieldErr(t, c.ValidateConfig(raw(map[string]string{"api_base": "http://localhost:8080"}), key), "config.api_base")
	fieldErr(t, c.ValidateConfig(nil, nil), "credentials.write_key")
}

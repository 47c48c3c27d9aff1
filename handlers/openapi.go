package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// operation is one documented /v1 route.
type operation struct {
	method, path, summary string
	scope                 string // "ingest" when an ingest key may call it
	request               string // component schema of the JSON body, if any
	response              string // component schema of the success body
	status                string // success status
	query                 []string
}

// Operations lists every /v1 operation; the OpenAPI document is built from it and a test
// checks it against the route table.
var operations = []operation{
	{method: "POST", path: "/v1/events", summary: "Ingest one event (JSON, or a CloudEvent in structured or binary mode)", scope: "ingest", request: "EventInput", response: "Accepted", status: "202"},
	{method: "POST", path: "/v1/events/batch", summary: "Ingest up to 100 events ({\"events\": [...]}, or application/cloudevents-batch+json)", scope: "ingest", request: "EventBatch", response: "BatchResult", status: "202"},
	{method: "GET", path: "/v1/events", summary: "List events, newest first", response: "EventList", status: "200", query: []string{"type", "status", "since", "until", "cursor", "limit"}},
	{method: "GET", path: "/v1/events/{id}", summary: "One event with its deliveries and attempts", response: "EventDetail", status: "200"},
	{method: "GET", path: "/v1/connections", summary: "List connections", response: "ConnectionList", status: "200"},
	{method: "POST", path: "/v1/connections", summary: "Create a connection (webhook connections return their signing secret once)", request: "ConnectionInput", response: "Connection", status: "201"},
	{method: "GET", path: "/v1/connections/{id}", summary: "One connection", response: "Connection", status: "200"},
	{method: "PATCH", path: "/v1/connections/{id}", summary: "Update name, config, credentials or status", request: "ConnectionInput", response: "Connection", status: "200"},
	{method: "DELETE", path: "/v1/connections/{id}", summary: "Delete a connection no rule uses", status: "204"},
	{method: "POST", path: "/v1/connections/{id}/test", summary: "Send a harmless test call", response: "TestResult", status: "200"},
	{method: "POST", path: "/v1/connections/{id}/rotate-secret", summary: "Rotate a webhook signing secret (the old one keeps signing for 24 h)", response: "SigningSecret", status: "200"},
	{method: "GET", path: "/v1/connections/{id}/options/{option}", summary: "Live choices of an action option (Mailchimp audiences, Slack channels)", response: "OptionList", status: "200"},
	{method: "GET", path: "/v1/rules", summary: "List rules in evaluation order", response: "RuleList", status: "200"},
	{method: "POST", path: "/v1/rules", summary: "Create a rule", request: "RuleInput", response: "Rule", status: "201"},
	{method: "POST", path: "/v1/rules/test", summary: "Dry run: which rules match a sample event and what each action would send", request: "RuleTest", response: "RuleTestResult", status: "200"},
	{method: "GET", path: "/v1/rules/{id}", summary: "One rule", response: "Rule", status: "200"},
	{method: "PATCH", path: "/v1/rules/{id}", summary: "Update a rule", request: "RuleInput", response: "Rule", status: "200"},
	{method: "DELETE", path: "/v1/rules/{id}", summary: "Delete a rule", status: "204"},
	{method: "GET", path: "/v1/deliveries", summary: "List deliveries (status=dead lists dead letters)", response: "DeliveryList", status: "200", query: []string{"status", "connection_id", "rule_id", "event_id", "error_class", "since", "until", "cursor", "limit"}},
	{method: "POST", path: "/v1/deliveries/replay", summary: "Replay every delivery matching a filter (default status=dead)", request: "ReplayFilter", response: "ReplayCount", status: "202"},
	{method: "POST", path: "/v1/deliveries/{id}/replay", summary: "Replay one delivery; its attempts continue its history", response: "Delivery", status: "202"},
	{method: "POST", path: "/v1/deliveries/{id}/discard", summary: "Set a dead delivery aside (a replay brings it back)", response: "Delivery", status: "200"},
	{method: "GET", path: "/v1/api-keys", summary: "List API keys (prefix, scope, last use)", response: "APIKeyList", status: "200"},
	{method: "POST", path: "/v1/api-keys", summary: "Create an API key (the key is in this response only)", request: "APIKeyInput", response: "APIKey", status: "201"},
	{method: "DELETE", path: "/v1/api-keys/{id}", summary: "Revoke an API key", status: "204"},
	{method: "GET", path: "/v1/members", summary: "List the workspace's members", response: "MemberList", status: "200"},
	{method: "PATCH", path: "/v1/members/{id}", summary: "Change a member's role (the last owner stays owner)", request: "MemberInput", status: "204"},
	{method: "DELETE", path: "/v1/members/{id}", summary: "Remove a member", status: "204"},
	{method: "POST", path: "/v1/invites", summary: "Create a one-time invite link", request: "InviteInput", response: "Invite", status: "201"},
}

// DocumentedRoutes returns "METHOD /path/:param" for every documented operation, in
// Echo's path syntax, for the route-table test.
func DocumentedRoutes() []string {
	var out []string
	for _, op := range operations {
		out = append(out, op.method+" "+strings.NewReplacer("{id}", ":id", "{option}", ":option").Replace(op.path))
	}
	return out
}

var (
	openAPIOnce sync.Once
	openAPIDoc  map[string]any
)

// OpenAPI serves the OpenAPI 3.1 document of the /v1 API.
func (h *Handlers) OpenAPI(c echo.Context) error {
	openAPIOnce.Do(func() { openAPIDoc = buildOpenAPI() })
	return c.JSON(http.StatusOK, openAPIDoc)
}

func buildOpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, op := range operations {
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		o := map[string]any{
			"summary":     op.summary,
			"operationId": strings.ToLower(op.method) + strings.NewReplacer("/v1/", "_", "/", "_", "{", "", "}", "", "-", "_").Replace(op.path),
			"responses":   responses(op),
		}
		if op.scope != "ingest" {
			o["description"] = "Requires an admin API key."
		}
		var params []map[string]any
		for _, p := range []string{"id", "option"} {
			if strings.Contains(op.path, "{"+p+"}") {
				params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]string{"type": "string"}})
		}
		if op.path == "/v1/events" && op.method == "POST" {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "schema": map[string]any{"type": "string", "maxLength": 255}})
		}
		if params != nil {
			o["parameters"] = params
		}
		if op.request != "" {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(op.request)}}}
		}
		paths[op.path][strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Fanout API", "version": "1.0.0",
			"description": "One event in, many integrations out. Errors are {\"error\": {\"code\", \"message\", \"field\"?}}."},
		"security": []map[string][]string{{"bearer": {}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer", "description": "An API key: ingest keys may only post events; admin keys use the whole API."}},
			"schemas":         schemas,
		},
	}
}

func responses(op operation) map[string]any {
	ok := map[string]any{"description": http.StatusText(statusCode(op.status))}
	if op.response != "" {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(op.response)}}
	}
	r := map[string]any{op.status: ok}
	for _, s := range []string{"400", "401", "403", "404", "409", "413", "415", "422", "429"} {
		r[s] = map[string]any{"description": http.StatusText(statusCode(s)), "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	if op.path == "/v1/events/batch" {
		r["207"] = map[string]any{"description": "Some events were refused; one result per item", "content": map[string]any{"application/json": map[string]any{"schema": ref("BatchResult")}}}
	}
	return r
}

func statusCode(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func ref(name string) map[string]string {
	return map[string]string{"$ref": "#/components/schemas/" + name}
}

func obj(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if required != nil {
		o["required"] = required
	}
	return o
}

func listOf(item string) map[string]any {
	return obj(map[string]any{"data": map[string]any{"type": "array", "items": ref(item)}, "next_cursor": str}, "data", "next_cursor")
}

var (
	str      = map[string]string{"type": "string"}
	integer  = map[string]string{"type": "integer"}
	boolean  = map[string]string{"type": "boolean"}
	object   = map[string]string{"type": "object"}
	datetime = map[string]string{"type": "string", "format": "date-time"}
)

var schemas = map[string]any{
	"Error":      obj(map[string]any{"error": obj(map[string]any{"code": str, "message": str, "field": str}, "code", "message")}, "error"),
	"EventInput": obj(map[string]any{"type": str, "data": object, "id": str, "occurred_at": datetime}, "type", "data"),
	"EventBatch": obj(map[string]any{"events": map[string]any{"type": "array", "maxItems": 100, "items": ref("EventInput")}}, "events"),
	"Accepted":   obj(map[string]any{"id": str, "duplicate": boolean, "received_at": datetime}, "id"),
	"BatchResult": obj(map[string]any{"data": map[string]any{"type": "array", "items": obj(map[string]any{
		"index": integer, "status": integer, "id": str, "error": obj(map[string]any{"code": str, "message": str, "field": str})})}}),
	"Event":       obj(map[string]any{"id": str, "type": str, "data": object, "source": str, "external_id": str, "occurred_at": datetime, "received_at": datetime, "routed_at": datetime}),
	"EventList":   listOf("Event"),
	"EventDetail": map[string]any{"allOf": []any{ref("Event"), obj(map[string]any{"deliveries": map[string]any{"type": "array", "items": ref("Delivery")}})}},
	"Delivery": obj(map[string]any{"id": str, "event_id": str, "rule_id": str, "rule_action_id": str, "connection_id": str,
		"status":        map[string]any{"type": "string", "enum": []string{"pending", "retrying", "succeeded", "dead"}},
		"attempt_count": integer, "next_attempt_at": datetime, "last_error": str, "last_error_class": str,
		"attempts": map[string]any{"type": "array", "items": ref("Attempt")}}),
	"DeliveryList": listOf("Delivery"),
	"Attempt": obj(map[string]any{"number": integer, "started_at": datetime, "duration_ms": integer, "status_code": integer,
		"error_class": str, "error_message": str, "retryable": boolean, "outcome": str, "response_excerpt": str, "request": str}),
	"ConnectionInput": obj(map[string]any{"kind": str, "name": str, "config": object, "credentials": object,
		"status": map[string]any{"type": "string", "enum": []string{"active", "disabled"}}}),
	"Connection": obj(map[string]any{"id": str, "kind": str, "name": str, "config": object, "status": str, "status_note": str,
		"created_at": datetime, "updated_at": datetime, "signing_secret": map[string]string{"type": "string", "description": "Only in the response that created it."}}),
	"ConnectionList": listOf("Connection"),
	"TestResult":     obj(map[string]any{"ok": boolean, "outcome": str, "status_code": integer, "error_class": str, "message": str, "response": str, "duration_ms": integer}),
	"SigningSecret":  obj(map[string]any{"signing_secret": str}),
	"RuleInput": obj(map[string]any{"name": str, "event_type": str, "condition": object, "expression": str, "enabled": boolean, "position": integer,
		"actions": map[string]any{"type": "array", "items": obj(map[string]any{"connection_id": str, "action": str, "options": object,
			"mapping": map[string]any{"type": "object", "additionalProperties": str}, "retry": obj(map[string]any{"max_attempts": integer, "schedule": map[string]any{"type": "array", "items": str}, "max_age": str}), "timeout": str})}}),
	"Rule":           obj(map[string]any{"id": str, "name": str, "event_type": str, "condition": object, "expression": str, "enabled": boolean, "position": integer, "actions": map[string]any{"type": "array", "items": object}}),
	"RuleList":       listOf("Rule"),
	"RuleTest":       obj(map[string]any{"event": ref("EventInput")}, "event"),
	"RuleTestResult": obj(map[string]any{"results": map[string]any{"type": "array", "items": obj(map[string]any{"rule_id": str, "name": str, "matched": boolean, "reason": str, "actions": map[string]any{"type": "array", "items": obj(map[string]any{"connection_id": str, "action": str, "payload": object, "error": str})}})}}),
	"ReplayFilter":   obj(map[string]any{"status": str, "connection_id": str, "rule_id": str, "error_class": str, "since": datetime, "until": datetime}),
	"ReplayCount":    obj(map[string]any{"replayed": integer}),
	"OptionList":     listOf("Option"),
	"Option":         obj(map[string]any{"value": str, "label": str}),
	"APIKeyInput":    obj(map[string]any{"name": str, "scope": map[string]any{"type": "string", "enum": []string{"ingest", "admin"}}}, "name", "scope"),
	"APIKey":         obj(map[string]any{"id": str, "name": str, "prefix": str, "scope": str, "created_at": datetime, "last_used_at": datetime, "revoked_at": datetime, "key": map[string]string{"type": "string", "description": "Only in the response that created it."}}),
	"APIKeyList":     listOf("APIKey"),
	"Member":         obj(map[string]any{"user_id": str, "email": str, "role": str, "joined_at": datetime}),
	"MemberList":     listOf("Member"),
	"MemberInput":    obj(map[string]any{"role": map[string]any{"type": "string", "enum": []string{"owner", "admin", "viewer"}}}, "role"),
	"InviteInput":    obj(map[string]any{"role": map[string]any{"type": "string", "enum": []string{"owner", "admin", "viewer"}}, "note": str}, "role"),
	"Invite":         obj(map[string]any{"id": str, "role": str, "expires_at": datetime, "path": map[string]string{"type": "string", "description": "The one-time sign-up path, relative to the dashboard's base URL."}}),
}

// Package views holds the dashboard's templ components: one file per feature, component
// names prefixed by feature (EventsPage, EventTimeline, ConnectionsPage …). Views read
// db types and plain view models; they never import handlers.
package views

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fanout-dev/fanout/db"
	"github.com/fanout-dev/fanout/views/components"
)

// Flash is a one-time message carried across a redirect.
type Flash struct {
	Kind    string // "success" or "error"
	Message string
}

// Shell is what the application layout needs on every page.
type Shell struct {
	Title      string
	Nav        string // the active nav item: overview, events, connections, …
	User       *db.User
	Workspace  *db.UserWorkspace
	Workspaces []db.UserWorkspace
	CSRF       string
	Flash      Flash
	Now        time.Time
}

// CanEdit reports whether the signed-in member may change things (admin or owner).
func (s Shell) CanEdit() bool {
	return s.Workspace != nil && db.RoleRank(s.Workspace.Role) >= db.RoleRank(db.RoleAdmin)
}

// IsOwner reports whether the signed-in member owns the workspace.
func (s Shell) IsOwner() bool { return s.Workspace != nil && s.Workspace.Role == db.RoleOwner }

// URL returns a path inside the current workspace: URL("/events") → "/w/ws_…/events".
func (s Shell) URL(path string) string {
	if s.Workspace == nil {
		return path
	}
	return WorkspaceURL(s.Workspace.ID, path)
}

// WorkspaceURL returns a path inside a workspace.
func WorkspaceURL(workspaceID, path string) string { return "/w/" + workspaceID + path }

// csrfHeaders is the hx-headers value that makes every htmx request carry the token.
func csrfHeaders(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

// htmxConfig disables everything that would need eval or inline styles (the pages run
// under a strict Content-Security-Policy) and swaps 422 answers, which carry a form with
// its errors.
const htmxConfig = `{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0,` +
	`"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"422","swap":true},{"code":"[45]..","swap":false,"error":true}]}`

// StatusBadgeKind maps a delivery status to a badge colour.
func StatusBadgeKind(status string) string {
	switch status {
	case db.DeliverySucceeded:
		return components.Success
	case db.DeliveryRetrying:
		return components.Warning
	case db.DeliveryDead:
		return components.Danger
	case db.DeliveryPending:
		return components.Info
	}
	return components.Neutral
}

// StatusLabel is the human word for a delivery status.
func StatusLabel(status string) string {
	switch status {
	case db.DeliverySucceeded:
		return "Succeeded"
	case db.DeliveryRetrying:
		return "Retrying"
	case db.DeliveryDead:
		return "Dead"
	case db.DeliveryPending:
		return "Pending"
	case db.DeliveryDiscarded:
		return "Discarded"
	}
	return status
}

func connectionBadge(status string) (string, string) {
	switch status {
	case db.ConnectionActive:
		return components.Success, "Active"
	case db.ConnectionDisabled:
		return components.Neutral, "Disabled"
	case db.ConnectionNeedsReconnect:
		return components.Danger, "Needs reconnect"
	}
	return components.Neutral, status
}

// Ago formats how long ago t was, relative to now: "just now", "4m ago", "3h ago", "Jan 2".
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + Duration(-d)
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	case d < 7*24*time.Hour:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return t.UTC().Format("Jan 2, 2006")
}

// Duration formats a wait compactly: "45s", "12m", "3h 5m".
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()+0.5))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Stamp is an absolute UTC time for titles and tables.
func Stamp(t time.Time) string { return t.UTC().Format("Jan 2 2006, 15:04:05 UTC") }

func stampPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return Stamp(*t)
}

func itoa(n int) string { return strconv.Itoa(n) }

// Count formats a number with thousands separators.
func Count(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + Count(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PrettyJSON indents a JSON document for display; invalid JSON is returned as it is.
func PrettyJSON(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the template escapes; \u003c would only hide what was sent
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func initial(name string) string {
	for _, r := range strings.TrimSpace(name) {
		return strings.ToUpper(string(r))
	}
	return "?"
}

// withQuery returns path with the query string of v (empty values dropped).
func withQuery(path string, v url.Values) string {
	q := url.Values{}
	for k, vs := range v {
		for _, s := range vs {
			if s != "" {
				q.Add(k, s)
			}
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Count(n) + " " + many
}

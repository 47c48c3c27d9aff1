package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// Fixed test keys (32 bytes each).
var (
	key1 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key2 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

func mustKeyring(t *testing.T, spec string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(spec)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func TestParseKeyring(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, 32) // encodes differently in std and URL alphabets
	tests := []struct {
		name    string
		spec    string
		current string
		ids     []string
	}{
		{"one with id", "k7:" + key1, "k7", []string{"k7"}},
		{"bare key", key1, "k1", []string{"k1"}},
		{"two", "k2:" + key2 + ",k1:" + key1, "k2", []string{"k2", "k1"}},
		{"spaces", "  k2 : " + key2 + " , k1:" + key1 + "\n", "k2", []string{"k2", "k1"}},
		{"raw std base64", "a_b-C9:" + base64.RawStdEncoding.EncodeToString(raw), "a_b-C9", []string{"a_b-C9"}},
		{"url base64", "u:" + base64.URLEncoding.EncodeToString(raw), "u", []string{"u"}},
		{"raw url base64", "u:" + base64.RawURLEncoding.EncodeToString(raw), "u", []string{"u"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := mustKeyring(t, tc.spec)
			if k.CurrentID() != tc.current || !reflect.DeepEqual(k.ids, tc.ids) {
				t.Errorf("got current %q ids %q, want %q %q", k.CurrentID(), k.ids, tc.current, tc.ids)
			}
		})
	}
}

func TestParseKeyringErrors(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 16))
	tests := []struct {
		name string
		spec string
		want string
	}{
		{"empty", "", "the key is empty"},
		{"blank", "  \n", "the key is empty"},
		{"not base64", "k1:not base64!!", "not valid base64"},
		{"short key", "k1:" + short, "must be 32 bytes, it is 16"},
		{"short bare key", short, "must be 32 bytes, it is 16"},
		{"long key", "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{4}, 48)), "must be 32 bytes, it is 48"},
		{"duplicate id", "k1:" + key1 + ",k1:" + key2, `entry 2 of 2: key id "k1" is used twice`},
		{"bad id", "k 1:" + key1, "key id must be"},
		{"reversed", key1 + ":k1", "key id must be"},
		{"empty id", ":" + key1, "key id must be"},
		{"trailing comma", "k1:" + key1 + ",", "entry 2 of 2: the entry is empty"},
		{"bare key among several", key2 + ",k1:" + key1, "entry 1 of 2: the entry has no key id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyring(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want …%s…", err, tc.want)
			}
			for _, secret := range []string{key1, key2, short, key1[:8], key2[:8], short[:8]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes key material", err)
				}
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	k := mustKeyring(t, "k1:"+key1)
	aad := ConnectionAAD("ws_1", "con_1")
	if aad != "connection:ws_1:con_1" {
		t.Fatalf("ConnectionAAD = %q", aad)
	}
	for _, plaintext := range [][]byte{nil, []byte("x"), []byte(`{"api_key":"secret"}`), bytes.Repeat([]byte{0, 0xff}, 5000)} {
		t.Run(fmt.Sprint(len(plaintext)), func(t *testing.T) {
			sealed, err := k.Seal(plaintext, aad)
			if err != nil {
				t.Fatal(err)
			}
			payload, ok := bytes.CutPrefix(sealed, []byte("k1:"))
			if !ok {
				t.Fatalf("sealed value %q does not start with the key id", sealed)
			}
			ct, err := base64.StdEncoding.DecodeString(string(payload))
			if err != nil {
				t.Fatalf("payload is not base64: %v", err)
			}
			if want := 12 + len(plaintext) + 16; len(ct) != want {
				t.Errorf("nonce+ciphertext+tag is %d bytes, want %d", len(ct), want)
			}
			if len(plaintext) > 4 && bytes.Contains(sealed, plaintext) {
				t.Error("plaintext visible in sealed value")
			}
			got, err := k.Open(sealed, aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Errorf("round trip changed the plaintext")
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := mustKeyring(t, key1)
	a, _ := k.Seal([]byte("same"), "aad")
	b, _ := k.Seal([]byte("same"), "aad")
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal: nonce reused")
	}
}

func TestOpenFailures(t *testing.T) {
	k := mustKeyring(t, "k1:"+key1)
	aad := ConnectionAAD("ws_1", "con_1")
	sealed, err := k.Seal([]byte(`{"api_key":"secret"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	other := mustKeyring(t, "k1:"+key2) // same id, different key

	flip := func(i int) []byte {
		ct, _ := base64.StdEncoding.DecodeString(string(sealed[3:]))
		ct[i] ^= 0x01
		return append([]byte("k1:"), base64.StdEncoding.EncodeToString(ct)...)
	}
	tests := []struct {
		name    string
		keyring *Keyring
		sealed  []byte
		aad     string
		unknown bool
	}{
		{"wrong aad: other connection", k, sealed, ConnectionAAD("ws_1", "con_2"), false},
		{"wrong aad: other workspace", k, sealed, ConnectionAAD("ws_2", "con_1"), false},
		{"empty aad", k, sealed, "", false},
		{"other key, same id", other, sealed, aad, false},
		{"tampered nonce", k, flip(0), aad, false},
		{"tampered ciphertext", k, flip(14), aad, false},
		{"tampered tag", k, flip(12 + 20 + 15), aad, false},
		{"truncated", k, sealed[:len(sealed)-8], aad, false},
		{"too short", k, []byte("k1:AAAA"), aad, false},
		{"not base64", k, []byte("k1:!!!!"), aad, false},
		{"no id", k, sealed[3:], aad, false},
		{"empty", k, nil, aad, false},
		{"unknown key id", k, append([]byte("k9"), sealed[2:]...), aad, true},
		{"nil keyring", nil, sealed, aad, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.keyring.Open(tc.sealed, tc.aad)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("got %q, %v; want ErrDecrypt", got, err)
			}
			if errors.Is(err, ErrUnknownKey) != tc.unknown {
				t.Errorf("errors.Is(err, ErrUnknownKey) = %v, want %v (%v)", !tc.unknown, tc.unknown, err)
			}
		})
	}

	// Every single-bit change anywhere in the payload is detected.
	ct, _ := base64.StdEncoding.DecodeString(string(sealed[3:]))
	for i := range ct {
		if _, err := k.Open(flip(i), aad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("flipping byte %d: got %v", i, err)
		}
	}
}

func TestRotation(t *testing.T) {
	old := mustKeyring(t, "k1:"+key1)
	rotated := mustKeyring(t, "k2:"+key2+",k1:"+key1)
	aad := ConnectionAAD("ws", "con")

	sealedOld, err := old.Seal([]byte("token"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if old.NeedsRotation(sealedOld) {
		t.Error("old keyring: its own value needs rotation")
	}
	if !rotated.NeedsRotation(sealedOld) {
		t.Error("rotated keyring: value under k1 does not need rotation")
	}
	got, err := rotated.Open(sealedOld, aad)
	if err != nil || string(got) != "token" {
		t.Fatalf("old key no longer opens: %q, %v", got, err)
	}

	resealed, err := rotated.Seal(got, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(resealed, []byte("k2:")) || rotated.NeedsRotation(resealed) {
		t.Errorf("re-sealed value %q is not under the current key", resealed)
	}

	// Once every value is re-sealed the old key can go; values it sealed then fail clearly.
	onlyNew := mustKeyring(t, "k2:"+key2)
	if _, err := onlyNew.Open(resealed, aad); err != nil {
		t.Errorf("re-sealed value: %v", err)
	}
	if _, err := onlyNew.Open(sealedOld, aad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("got %v, want ErrUnknownKey", err)
	}

	for _, junk := range [][]byte{nil, []byte("plain"), []byte(":x"), []byte("bad id:x")} {
		if rotated.NeedsRotation(junk) {
			t.Errorf("NeedsRotation(%q) = true", junk)
		}
	}
}

func TestSealJSON(t *testing.T) {
	type creds struct {
		APIKey    string `json:"api_key"`
		ExpiresAt int64  `json:"expires_at"`
	}
	k := mustKeyring(t, key1)
	aad := ConnectionAAD("ws", "con")
	in := creds{APIKey: "sk_live_123", ExpiresAt: 1700000000}
	sealed, err := k.SealJSON(in, aad)
	if err != nil {
		t.Fatal(err)
	}
	var out creds
	if err := k.OpenJSON(sealed, aad, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("got %+v, want %+v", out, in)
	}
	var m map[string]string
	if err := k.OpenJSON(sealed, "connection:ws:other", &m); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong aad: got %v", err)
	}
	if _, err := k.SealJSON(func() {}, aad); err == nil {
		t.Error("sealing an unencodable value: want an error")
	}
	notJSON, _ := k.Seal([]byte("not json"), aad)
	if err := k.OpenJSON(notJSON, aad, &m); err == nil || errors.Is(err, ErrDecrypt) {
		t.Errorf("decoding a non-JSON plaintext: got %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b {
		t.Error("two generated keys are equal")
	}
	k := mustKeyring(t, a)
	if id, _, _ := strings.Cut(a, ":"); k.CurrentID() != id || !strings.HasPrefix(id, "k") || len(id) != 15 {
		t.Errorf("id %q", k.CurrentID())
	}
	sealed, err := k.Seal([]byte("x"), "aad")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(sealed, "aad"); err != nil || string(got) != "x" {
		t.Errorf("round trip: %q, %v", got, err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secret.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", dir.Mode().Perm())
	}

	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("key directory holds %d files, want only the key", len(entries))
	}

	k2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v, %v", created, err)
	}
	sealed, _ := k1.Seal([]byte("x"), "aad")
	if got, err := k2.Open(sealed, "aad"); err != nil || string(got) != "x" {
		t.Errorf("reloaded keyring does not open: %q, %v", got, err)
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		rings   []*Keyring
	)
	for range 8 {
		wg.Go(func() {
			k, c, err := LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			rings = append(rings, k)
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d callers created the key", created)
	}
	for _, k := range rings {
		if k.CurrentID() != rings[0].CurrentID() {
			t.Errorf("callers got different keys")
		}
	}
}

func TestLoadExistingFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		current string
		wantErr string
	}{
		{"rotation over lines", "# comment\nk2:" + key2 + "\n\nk1:" + key1 + "\n", "k2", ""},
		{"one line", "k2:" + key2 + ",k1:" + key1, "k2", ""},
		{"empty", "", "", "the key is empty"},
		{"comments only", "# nothing\n", "", "the key is empty"},
		{"truncated key", "k1:" + key1[:20], "", "must be 32 bytes"},
		{"garbage", "k1:" + key1[:21], "", "not valid base64"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			k, created, err := LoadOrCreate(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want …%s…", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), key1[:20]) {
					t.Errorf("error echoes key material: %v", err)
				}
				return
			}
			if err != nil || created || k.CurrentID() != tc.current {
				t.Fatalf("got %v, created=%v, %v", k, created, err)
			}
		})
	}
}

func TestKeyringNeverPrintsKeys(t *testing.T) {
	k := mustKeyring(t, "k2:"+key2+",k1:"+key1)
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{k, *k} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, key1[:8]) || strings.Contains(out, key2[:8]) ||
				strings.Contains(out, "0101010101") || strings.Contains(out, "0202020202") {
				t.Errorf("%s of %T prints key material: %s", format, v, out)
			}
		}
	}
	if got := k.String(); got != `secrets.Keyring{current: "k2", keys: ["k2" "k1"]}` {
		t.Errorf("String = %s", got)
	}
}

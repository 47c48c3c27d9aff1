// Package secrets seals connection credentials at rest with AES-256-GCM under a keyring:
// one current key that seals, and older keys kept only to open what they sealed until
// every value has been re-sealed (rotation).
//
// A sealed value is ASCII text:
//
//	<key id> ":" base64(nonce ‖ ciphertext ‖ tag)
//
// with a random 12-byte nonce and standard, padded base64: text rather than raw bytes, so
// that it survives any column type (blob or text) and copy and paste. Every value is
// sealed with additional data (AAD) naming the row it belongs to, such as
// ConnectionAAD(workspaceID, connectionID): a value copied into another row does not open.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Errors returned by Open. Every failure to open wraps ErrDecrypt; a value sealed under a
// key the keyring does not hold (an old key dropped too early) also wraps ErrUnknownKey.
var (
	ErrDecrypt    = errors.New("cannot decrypt sealed value")
	ErrUnknownKey = errors.New("sealed under a key that is not in the keyring")
)

const (
	keySize     = 32 // AES-256
	maxIDLen    = 64
	defaultID   = "k1"
	fileHeading = "# Fanout secret key: seals connection credentials. Keep it private and backed up;\n" +
		"# without it stored credentials cannot be read. Set FANOUT_SECRET_KEY to override.\n"
)

// ConnectionAAD returns the additional data that binds a connection's sealed credentials
// to their row.
func ConnectionAAD(workspaceID, connectionID string) string {
	return "connection:" + workspaceID + ":" + connectionID
}

// Keyring holds the current key, which seals, and older keys, which only open. It is safe
// for concurrent use. Its String and GoString never show key material.
type Keyring struct {
	prk     []byte // HKDF pseudorandom key of the current key, for DeriveKey
	current string
	ids     []string // in spec order, current first
	keys    map[string]cipher.AEAD
}

// ParseKeyring parses a key specification, the format of FANOUT_SECRET_KEY: comma-separated
// "id:base64key" entries, the first of which is current, e.g. "k2:BASE64,k1:BASE64". A
// single entry may be a bare base64 key, which gets the id "k1". Ids are 1 to 64
// letters, digits, '_' or '-'; keys are 32 bytes in standard or URL-safe base64, padded
// or not. Error messages name entries by position and never repeat key material.
func ParseKeyring(spec string) (*Keyring, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("parse secret key: the key is empty")
	}
	entries := strings.Split(spec, ",")
	k := &Keyring{keys: make(map[string]cipher.AEAD, len(entries))}
	for i, entry := range entries {
		id, key, err := parseEntry(strings.TrimSpace(entry), len(entries))
		if err != nil {
			return nil, fmt.Errorf("parse secret key entry %d of %d: %w", i+1, len(entries), err)
		}
		aead, err := newAEAD(key)
		if i == 0 && err == nil {
			k.prk, err = hkdf.Extract(sha256.New, key, []byte("fanout derived keys"))
		}
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("parse secret key entry %d of %d: %w", i+1, len(entries), err)
		}
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("parse secret key entry %d of %d: key id %q is used twice", i+1, len(entries), id)
		}
		if i == 0 {
			k.current = id
		}
		k.ids = append(k.ids, id)
		k.keys[id] = aead
	}
	return k, nil
}

// parseEntry returns an entry's id and key; the caller clears the key after use.
func parseEntry(entry string, entries int) (string, []byte, error) {
	if entry == "" {
		return "", nil, errors.New("the entry is empty")
	}
	id, encoded, ok := strings.Cut(entry, ":")
	id = strings.TrimSpace(id)
	if !ok {
		if entries > 1 {
			return "", nil, errors.New(`the entry has no key id: write "id:base64key"`)
		}
		id, encoded = defaultID, entry
	}
	if !validID(id) {
		// Not echoed: a malformed entry may well be key material.
		return "", nil, fmt.Errorf("the key id must be 1 to %d letters, digits, '_' or '-'", maxIDLen)
	}
	key, err := decodeKey(strings.TrimSpace(encoded))
	if err != nil {
		return "", nil, err
	}
	return id, key, nil
}

// DeriveKey returns n bytes for one purpose ("oauth cookie hash", …), derived from the
// current key with HKDF-SHA256, so other secrets need no configuration of their own. They
// change when the current key does.
func (k *Keyring) DeriveKey(purpose string, n int) ([]byte, error) {
	return hkdf.Expand(sha256.New, k.prk, purpose, n)
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != keySize {
			clear(key)
			return nil, fmt.Errorf("the key must be %d bytes, it is %d (generate one with `fanout secrets`)", keySize, len(key))
		}
		return key, nil
	}
	return nil, errors.New("the key is not valid base64")
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	// The nonce is random, 12 bytes, generated by Seal and prepended to its output.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	return aead, nil
}

// GenerateKey returns a new random key specification, "k<UTC timestamp>:base64key", for
// `fanout secrets` and the generated default key file. To rotate, put a new key first:
// "NEW,OLD".
func GenerateKey() (string, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate secret key: %w", err)
	}
	defer clear(key)
	id := "k" + time.Now().UTC().Format("20060102150405")
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// LoadOrCreate reads the keyring stored at path, creating the file (mode 0600, its
// directory 0700) with a new key when it does not exist; created reports the latter. It
// is the fallback when FANOUT_SECRET_KEY is unset. The file holds one key specification,
// its entries separated by commas or lines; lines starting with '#' are comments.
func LoadOrCreate(path string) (k *Keyring, created bool, err error) {
	k, err = load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	spec, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := write(path, spec); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process created it first
			k, err = load(path)
			return k, false, err
		}
		return nil, false, err
	}
	k, err = ParseKeyring(spec)
	return k, err == nil, err
}

func load(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	var entries []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read secret key file %s: %w", path, err)
	}
	k, err := ParseKeyring(strings.Join(entries, ","))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return k, nil
}

// write creates path holding spec, atomically: the file appears complete or not at all,
// so a concurrent LoadOrCreate never reads it half-written. It fails with fs.ErrExist
// when path already exists.
func write(path, spec string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create secret key directory: %w", err)
	}
	content := []byte(fileHeading + spec + "\n")
	tmp, err := os.CreateTemp(dir, ".secret-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create secret key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write secret key file: %w", err)
	}
	// A hard link, unlike a rename, never replaces a key another process created.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return writeExclusive(path, content) // a file system without hard links
	}
	return nil
}

func writeExclusive(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("create secret key file: %w", err)
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // never leave a half-written key behind
		return fmt.Errorf("write secret key file: %w", err)
	}
	return nil
}

// CurrentID returns the id of the key that seals.
func (k *Keyring) CurrentID() string { return k.current }

// Seal encrypts plaintext under the current key, bound to aad.
func (k *Keyring) Seal(plaintext []byte, aad string) ([]byte, error) {
	if k == nil || k.keys[k.current] == nil {
		return nil, errors.New("seal: no secret key")
	}
	ct := k.keys[k.current].Seal(nil, nil, plaintext, []byte(aad))
	out := make([]byte, 0, len(k.current)+1+base64.StdEncoding.EncodedLen(len(ct)))
	out = append(out, k.current...)
	out = append(out, ':')
	return base64.StdEncoding.AppendEncode(out, ct), nil
}

// Open decrypts a value made by Seal with the key it names. A wrong aad (a value moved
// to another row), a tampered or truncated value and a key missing from the keyring all
// fail with an error wrapping ErrDecrypt.
func (k *Keyring) Open(sealed []byte, aad string) ([]byte, error) {
	id, payload, ok := split(sealed)
	if !ok {
		return nil, fmt.Errorf("%w: not a sealed value", ErrDecrypt)
	}
	var aead cipher.AEAD
	if k != nil {
		aead = k.keys[id]
	}
	if aead == nil {
		return nil, fmt.Errorf("%w: %w (%q)", ErrDecrypt, ErrUnknownKey, id)
	}
	ct, err := base64.StdEncoding.DecodeString(string(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: malformed value", ErrDecrypt)
	}
	plaintext, err := aead.Open(nil, nil, ct, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: wrong key or additional data, or tampered value", ErrDecrypt)
	}
	return plaintext, nil
}

func split(sealed []byte) (id string, payload []byte, ok bool) {
	before, after, found := bytes.Cut(sealed, []byte(":"))
	if !found || !validID(string(before)) {
		return "", nil, false
	}
	return string(before), after, true
}

// NeedsRotation reports whether a sealed value is sealed under a key other than the
// current one, so a rotation job should open and re-seal it. It is false for values that
// are not sealed values at all.
func (k *Keyring) NeedsRotation(sealed []byte) bool {
	id, _, ok := split(sealed)
	return ok && k != nil && id != k.current
}

// SealJSON encodes v as JSON and seals it.
func (k *Keyring) SealJSON(v any, aad string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("seal: encode: %w", err)
	}
	defer clear(b)
	return k.Seal(b, aad)
}

// OpenJSON opens a value made by SealJSON and decodes it into v.
func (k *Keyring) OpenJSON(sealed []byte, aad string, v any) error {
	b, err := k.Open(sealed, aad)
	if err != nil {
		return err
	}
	defer clear(b)
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("open: decode: %w", err)
	}
	return nil
}

// String describes the keyring by its key ids only.
func (k Keyring) String() string {
	return fmt.Sprintf("secrets.Keyring{current: %q, keys: %q}", k.current, k.ids)
}

// GoString is String, so that %#v cannot print key material either.
func (k Keyring) GoString() string { return k.String() }

package loop

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// appKeyFile holds the cluster's app key (plugin.AppKeyKeeper), hex, mode
// 0600: next to the data, readable by root on the hosts that mount the
// folder, never in etcd.
const appKeyFile = ".relocvol-app-key"

// AppKey implements plugin.AppKeyKeeper.
func (l *Loop) AppKey(context.Context) ([]byte, error) {
	path := filepath.Join(l.dir, appKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(string(b), "\n") {
		return nil, nil // being written by another host (MakeAppKey waits): the newline ends it
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("%s does not hold an app key (hex, at least 16 bytes): every app record signed with the lost key is refused; "+
			"if it was damaged, put the file back from a backup of the folder, or remove it so that the next host to join makes a new one "+
			"(then start each relocatable container again so that its agent signs its record)", path)
	}
	return key, nil
}

// MakeAppKey implements plugin.AppKeyKeeper: the file is created only if
// absent (createOnce), mode 0600, so two first hosts cannot both win.
func (l *Loop) MakeAppKey(ctx context.Context, key []byte) ([]byte, error) {
	created, err := createOnce(filepath.Join(l.dir, appKeyFile), hex.EncodeToString(key)+"\n", 0o600, func() (bool, error) {
		found, err := l.AppKey(ctx)
		return found != nil, err
	})
	if err != nil {
		return nil, err
	}
	if created {
		return key, nil
	}
	return l.AppKey(ctx)
}

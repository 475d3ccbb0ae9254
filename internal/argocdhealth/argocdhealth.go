// Package argocdhealth runs an Argo CD health script (health.lua) on an object the way Argo CD does:
// the object as the Lua table obj, the script returning a table with status and message. Argo CD embeds
// the same interpreter, github.com/yuin/gopher-lua, so the tests that use this see what Argo CD sees.
package argocdhealth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Status is what a health script says of an object.
type Status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Script is the capfleet health script of config/argocd, read from the source tree.
func Script() (string, error) {
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "config", "argocd", "resource_customizations",
		"capture.capfleet.dev", "_", "health.lua"))
	return string(b), err
}

// Eval runs script on obj, an object as the API server serves it (any JSON-able value: a typed object or
// an unstructured map).
func Eval(script string, obj any) (Status, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return Status{}, err
	}
	var m any
	if err := json.Unmarshal(raw, &m); err != nil {
		return Status{}, err
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, m))
	if err := L.DoString(script); err != nil {
		return Status{}, err
	}
	t, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("health script returned %s, not a table", L.Get(-1).Type())
	}
	return Status{Status: lua.LVAsString(t.RawGetString("status")), Message: lua.LVAsString(t.RawGetString("message"))}, nil
}

// toLua converts decoded JSON into Lua values as Argo CD does: objects and arrays become tables (arrays
// indexed from 1), numbers become numbers.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	}
	return lua.LNil
}

// Snippet is the argocd-cm entry that installs script for every kind of capfleet's API group.
func Snippet(script string) string {
	var b strings.Builder
	b.WriteString("data:\n  resource.customizations.health.capture.capfleet.dev_*: |\n")
	for _, line := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

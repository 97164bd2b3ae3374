// Package reconcile runs a controller's reconcile passes: one at once,
// then one after each Kick or when the pause the last pass asked for has
// passed, until the context ends. The volume and snapshot controllers
// share it.
package reconcile

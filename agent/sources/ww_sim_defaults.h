/* ww_sim_defaults: calibrated default settings for the simulated wafer-scale driver.
 *
 * The numbers live in one place, the agent's config table (ww_agent_conf.c, where their
 * sources are cited); these functions read them from there. Tests use them as a realistic
 * starting point and override what they exercise.
 */
#ifndef WW_SIM_DEFAULTS_H
#define WW_SIM_DEFAULTS_H

#include "ww_sim.h"

#include <stddef.h>

/* Fills *c with the calibrated defaults for everything except the models: c->models is set
 * to NULL and c->n_models to 0 (models come from the configuration, or from
 * ww_sim_default_models()). */
void ww_sim_conf_set_defaults(ww_sim_conf_t *c);

/* Writes up to cap default models (Llama 3.1 8B, 70B and 405B as served on a CS-3-class
 * system) into out[] and returns how many were written (at most 3). Each name is a heap
 * copy (strdup) so that default and configured models are freed the same way: the caller
 * frees out[i].name for every returned entry. Returns 0 if a name cannot be allocated
 * (nothing is left allocated then) or if out is NULL. */
size_t ww_sim_default_models(ww_sim_model_t *out, size_t cap);

#endif

<?php

/**
 * Renders one of the module's Twig templates to a string (OpenEMR's Twig in production, a plain Twig with the
 * same filters in tests).
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

interface TemplateRenderer
{
    /** @param array<string, mixed> $variables */
    public function render(string $template, array $variables): string;
}

<?php

/**
 * TemplateRenderer on OpenEMR's TwigContainer (src/Common/Twig/TwigContainer.php): OpenEMR's filters (text,
 * attr, xlt...) plus our templates directory. Beware: OpenEMR's Twig has autoescape off, so every template
 * escapes each value itself.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class OpenEmrTwigRenderer implements TemplateRenderer
{
    public const CONTAINER = 'OpenEMR\\Common\\Twig\\TwigContainer';

    public function __construct(private readonly string $templateDir, private readonly ?object $kernel = null)
    {
    }

    /** Whether this OpenEMR offers a Twig container a module can add its template path to. */
    public static function available(): bool
    {
        return class_exists(self::CONTAINER) && method_exists(self::CONTAINER, 'getTwig');
    }

    public function render(string $template, array $variables): string
    {
        if (!self::available()) {
            throw new \LogicException('OpenEMR has no TwigContainer.');
        }
        $container = new (self::CONTAINER)($this->templateDir, $this->kernel);
        return $container->getTwig()->render($template, $variables);
    }
}
